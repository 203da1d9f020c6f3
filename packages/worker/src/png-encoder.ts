import { promisify } from "node:util";
import zlib from "node:zlib";

const deflate = promisify(zlib.deflate);

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** PNG filter type 2: each byte is stored as its difference from the byte above it. */
const FILTER_UP = 2;

/** One PNG chunk as its parts (length + type, data, CRC), so the data is not copied here. */
function chunk(type: string, data: Buffer): Buffer[] {
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "latin1");
  const crc = Buffer.allocUnsafe(4);
  // The CRC covers the type and the data, not the length.
  crc.writeUInt32BE(zlib.crc32(data, zlib.crc32(head.subarray(4))), 0);
  return [head, data, crc];
}

/**
 * PNG scanlines of 8-bit RGB pixels with the "up" filter on every row: a filter byte, then each
 * byte minus the one above it (row 0 has zeros above, so it is stored as is).
 */
export function upFilteredScanlines(rgb: Uint8Array, width: number, height: number): Buffer {
  const stride = width * 3;
  if (rgb.length !== stride * height) {
    throw new RangeError(`expected ${stride * height} RGB bytes for ${width}×${height}, got ${rgb.length}`);
  }
  const out = Buffer.allocUnsafe((stride + 1) * height);
  for (let y = 0, s = 0, o = 0; y < height; y++, s += stride, o += stride + 1) {
    out[o] = FILTER_UP;
    if (y === 0) {
      out.set(rgb.subarray(0, stride), 1);
      continue;
    }
    for (let i = 0; i < stride; i++)
      out[o + 1 + i] = ((rgb[s + i] as number) - (rgb[s + i - stride] as number)) & 255;
  }
  return out;
}

/**
 * Encodes 8-bit RGB pixels (HWC) as a PNG, tuned for CPU rather than size: the "up" filter and
 * zlib's Z_RLE strategy (run-length matches only), which zlib documents as designed for PNG
 * image data. Measured by bench/cpu-per-image.mjs against libvips' encoder (no filter, zlib
 * level 2, what the worker used before): about 30% less CPU and 30–40% smaller files on
 * photographs, because filtering helps more than LZ77 searching does on photographic pixels.
 * Deflate runs on libuv's thread pool, off the calling thread.
 */
export async function encodeRgbPng(rgb: Uint8Array, width: number, height: number): Promise<Buffer> {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError(`invalid PNG size ${width}×${height}`);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bits per channel
  header[9] = 2; // colour type 2: RGB
  // Bytes 10–12 stay 0: deflate compression, adaptive filtering method, no interlace.
  const scanlines = upFilteredScanlines(rgb, width, height);
  const idat = await deflate(scanlines, {
    strategy: zlib.constants.Z_RLE,
    // Room for the whole stream in one output buffer (above zlib's bound for incompressible input),
    // so it is not collected in 16 KiB pieces and joined: fewer allocations, fewer copies.
    chunkSize: scanlines.length + (scanlines.length >> 10) + 64,
  });
  return Buffer.concat([
    PNG_SIGNATURE,
    ...chunk("IHDR", header),
    ...chunk("IDAT", idat),
    ...chunk("IEND", Buffer.alloc(0)),
  ]);
}
