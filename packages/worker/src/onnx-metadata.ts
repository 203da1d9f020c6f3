import { ModelContractError } from "@memscore/shared";

// ONNX Runtime's JavaScript API does not expose a model's metadata_props, so we read them from
// the ModelProto ourselves. Only top-level fields are walked; the (large) graph field is skipped
// by its length prefix, so this costs microseconds even for a 100 MB model.
const MODEL_PROTO_METADATA_PROPS = 14;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LENGTH_DELIMITED = 2;
const WIRE_FIXED32 = 5;

interface Cursor {
  bytes: Uint8Array;
  pos: number;
}

function readVarint(c: Cursor): number {
  let result = 0;
  let multiplier = 1;
  for (let i = 0; i < 10; i++) {
    if (c.pos >= c.bytes.length) throw new ModelContractError("not an ONNX model: truncated protobuf varint");
    const byte = c.bytes[c.pos++] as number;
    result += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) return result;
    multiplier *= 128;
  }
  throw new ModelContractError("not an ONNX model: malformed protobuf varint");
}

function readLengthDelimited(c: Cursor): Uint8Array {
  const length = readVarint(c);
  const end = c.pos + length;
  if (end > c.bytes.length)
    throw new ModelContractError("not an ONNX model: field runs past the end of the file");
  const slice = c.bytes.subarray(c.pos, end);
  c.pos = end;
  return slice;
}

function skipField(c: Cursor, wireType: number): void {
  switch (wireType) {
    case WIRE_VARINT:
      readVarint(c);
      return;
    case WIRE_FIXED64:
      c.pos += 8;
      return;
    case WIRE_LENGTH_DELIMITED:
      readLengthDelimited(c);
      return;
    case WIRE_FIXED32:
      c.pos += 4;
      return;
    default:
      throw new ModelContractError(`not an ONNX model: unsupported protobuf wire type ${wireType}`);
  }
}

function parseEntry(bytes: Uint8Array): [string, string] {
  const c: Cursor = { bytes, pos: 0 };
  const decoder = new TextDecoder();
  let key = "";
  let value = "";
  while (c.pos < bytes.length) {
    const tag = readVarint(c);
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field === ENTRY_KEY && wireType === WIRE_LENGTH_DELIMITED)
      key = decoder.decode(readLengthDelimited(c));
    else if (field === ENTRY_VALUE && wireType === WIRE_LENGTH_DELIMITED)
      value = decoder.decode(readLengthDelimited(c));
    else skipField(c, wireType);
  }
  return [key, value];
}

/** Reads the `metadata_props` key/value pairs of an ONNX model file's bytes. */
export function readOnnxMetadataProps(modelBytes: Uint8Array): Map<string, string> {
  const c: Cursor = { bytes: modelBytes, pos: 0 };
  const props = new Map<string, string>();
  while (c.pos < modelBytes.length) {
    const tag = readVarint(c);
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field === MODEL_PROTO_METADATA_PROPS && wireType === WIRE_LENGTH_DELIMITED) {
      const [key, value] = parseEntry(readLengthDelimited(c));
      props.set(key, value);
    } else {
      skipField(c, wireType);
    }
  }
  if (c.pos !== modelBytes.length) throw new ModelContractError("not an ONNX model: trailing bytes");
  return props;
}
