import type { Writable } from "node:stream";
import { ByteWriter, ParquetWriter } from "hyparquet-writer";
import type { ResultRow } from "./results.js";

type ParquetSchema = ConstructorParameters<typeof ParquetWriter>[0]["schema"];

/**
 * The typed columns of `results.parquet`, in table order. Strings are UTF-8; `score` is a double;
 * only `uri` and `status` are never null.
 */
const PARQUET_SCHEMA: ParquetSchema = [
  { name: "root", num_children: 7 },
  { name: "uri", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "REQUIRED" },
  { name: "status", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "REQUIRED" },
  { name: "score", type: "DOUBLE", repetition_type: "OPTIONAL" },
  { name: "heatmap", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
  { name: "error_reason", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
  { name: "error_message", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
  { name: "model_sha256", type: "BYTE_ARRAY", converted_type: "UTF8", repetition_type: "OPTIONAL" },
];

/**
 * Rows per row group. A row group is the unit a reader skips or reads in parallel, and the unit
 * this writer holds in memory (about 30 MB of strings at 50,000 rows of ~200-byte URIs).
 */
export const PARQUET_ROW_GROUP_ROWS = 50_000;

/**
 * hyparquet-writer's in-memory writer, emptied into a stream after each row group: the library
 * calls `flush()` once a row group is encoded and waits for the returned promise, so the file is
 * never held whole.
 */
class StreamByteWriter extends ByteWriter {
  private readonly out: Writable;

  constructor(out: Writable) {
    super(1024 * 1024);
    this.out = out;
  }

  async flush(): Promise<void> {
    if (this.index === 0) return;
    // A copy: the buffer is reused for the next row group as soon as this returns.
    const chunk = Buffer.from(this.buffer.slice(0, this.index));
    this.index = 0;
    if (!this.out.write(chunk)) await new Promise((resolve) => this.out.once("drain", resolve));
  }

  override finish(): Promise<void> {
    return this.flush();
  }
}

/**
 * Writes a run's results table as Parquet to a stream, in bounded memory: rows are gathered into
 * columns until a row group is full, which is then encoded (Snappy) and written out. Call
 * {@link ParquetResultsWriter.close} once every row is added; the stream itself is not ended.
 */
export class ParquetResultsWriter {
  private readonly writer: ParquetWriter;
  private readonly rowGroupRows: number;
  private columns = emptyColumns();

  constructor(out: Writable, options: { rowGroupRows?: number; metadata?: Record<string, string> } = {}) {
    this.rowGroupRows = options.rowGroupRows ?? PARQUET_ROW_GROUP_ROWS;
    this.writer = new ParquetWriter({
      writer: new StreamByteWriter(out),
      schema: PARQUET_SCHEMA,
      kvMetadata: Object.entries(options.metadata ?? {}).map(([key, value]) => ({ key, value })),
      createdBy: "memscore",
    });
  }

  /** Adds one row; resolves once it is buffered (or, when it filled a row group, written). */
  async append(row: ResultRow): Promise<void> {
    const c = this.columns;
    c.uri.push(row.uri);
    c.status.push(row.status);
    c.score.push(typeof row.score === "number" && Number.isFinite(row.score) ? row.score : null);
    c.heatmap.push(row.heatmap ?? null);
    c.error_reason.push(row.error_reason ?? null);
    c.error_message.push(row.error_message ?? null);
    c.model_sha256.push(row.model_sha256 ?? null);
    if (c.uri.length >= this.rowGroupRows) await this.flushRowGroup();
  }

  /** Writes the last row group and the file footer. */
  async close(): Promise<void> {
    await this.flushRowGroup();
    await this.writer.finish();
  }

  private async flushRowGroup(): Promise<void> {
    const c = this.columns;
    if (c.uri.length === 0) return;
    this.columns = emptyColumns();
    const columnData = Object.entries(c).map(([name, data]) => ({ name, data }));
    await this.writer.write({ columnData, rowGroupSize: c.uri.length });
  }
}

function emptyColumns() {
  return {
    uri: [] as string[],
    status: [] as string[],
    score: [] as (number | null)[],
    heatmap: [] as (string | null)[],
    error_reason: [] as (string | null)[],
    error_message: [] as (string | null)[],
    model_sha256: [] as (string | null)[],
  };
}
