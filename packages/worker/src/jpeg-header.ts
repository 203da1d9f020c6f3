/** A JPEG's size and EXIF orientation, as libvips reads them. */
export interface JpegHeader {
  /** Stored width and height (before orientation), from the frame header. */
  width: number;
  height: number;
  /** EXIF orientation, 1–8; 1 when the file has no EXIF. */
  orientation: number;
}

const EXIF_ID = [0x45, 0x78, 0x69, 0x66, 0, 0]; // "Exif\0\0"
const ORIENTATION_TAG = 0x0112;
const TIFF_SHORT = 3;

/**
 * Reads a JPEG's header facts from its bytes, walking the markers as libjpeg does up to the
 * first scan, so the worker need not spend a sharp call (0.2–0.5 CPU-ms of fixed cost) on
 * them. Only the plain case is read here: anything unusual (not a JPEG, truncated or malformed
 * markers, a frame without dimensions, two EXIF blocks, EXIF without an orientation in its first
 * directory, an orientation outside 1–8) returns undefined, and the caller asks libvips, which
 * then decides exactly as before. A test holds every answer to sharp's own.
 */
export function readJpegHeader(bytes: Uint8Array): JpegHeader | undefined {
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== 0xd8 || bytes[2] !== 0xff) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let frame: { width: number; height: number } | undefined;
  let exif: { start: number; end: number } | undefined;
  let pos = 2;
  for (;;) {
    if (bytes[pos] !== 0xff) return undefined;
    while (bytes[pos] === 0xff) pos++; // fill bytes before a marker are allowed
    if (pos + 2 >= bytes.length) return undefined;
    const marker = bytes[pos] as number;
    // The first scan ends the header; a header without a frame is not one we read.
    if (marker === 0xda) break;
    // Markers without a length (TEM, RST, SOI, EOI) do not belong in a header.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd9)) return undefined;
    const length = view.getUint16(pos + 1);
    const start = pos + 3;
    const end = pos + 1 + length;
    if (length < 2 || end > bytes.length) return undefined;
    const isFrame = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isFrame) {
      if (frame || length < 8) return undefined;
      frame = { height: view.getUint16(start + 1), width: view.getUint16(start + 3) };
      // A height of 0 means a DNL marker gives it after the first scan.
      if (frame.width === 0 || frame.height === 0) return undefined;
    } else if (marker === 0xe1 && startsWith(bytes, start, end, [0x45, 0x78, 0x69, 0x66])) {
      // libvips keeps the last "Exif" block; with more than one, let it decide.
      if (exif || !startsWith(bytes, start, end, EXIF_ID)) return undefined;
      exif = { start: start + EXIF_ID.length, end };
    }
    pos = end;
  }
  if (!frame) return undefined;
  const orientation = exif ? exifOrientation(view, exif.start, exif.end) : 1;
  return orientation === undefined ? undefined : { ...frame, orientation };
}

function startsWith(bytes: Uint8Array, start: number, end: number, prefix: number[]): boolean {
  return end - start >= prefix.length && prefix.every((b, i) => bytes[start + i] === b);
}

/** The Orientation entry of a TIFF block's first directory (IFD0), if plainly there. */
function exifOrientation(view: DataView, tiff: number, end: number): number | undefined {
  if (end - tiff < 8) return undefined;
  const order = view.getUint16(tiff);
  if (order !== 0x4949 && order !== 0x4d4d) return undefined; // "II" or "MM"
  const little = order === 0x4949;
  if (view.getUint16(tiff + 2, little) !== 42) return undefined;
  const ifd = tiff + view.getUint32(tiff + 4, little);
  if (ifd < tiff + 8 || ifd + 2 > end) return undefined;
  const count = view.getUint16(ifd, little);
  if (ifd + 2 + 12 * count > end) return undefined;
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + 12 * i;
    if (view.getUint16(entry, little) !== ORIENTATION_TAG) continue;
    if (view.getUint16(entry + 2, little) !== TIFF_SHORT || view.getUint32(entry + 4, little) !== 1)
      return undefined;
    const value = view.getUint16(entry + 8, little);
    return value >= 1 && value <= 8 ? value : undefined;
  }
  return undefined;
}
