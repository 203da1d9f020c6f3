/**
 * Splits one CSV record into fields (RFC 4180: fields in double quotes may hold commas, newlines
 * and `""` for a quote). Returns undefined while a quoted field is still open, so the caller can
 * append the next physical line (with its newline) and try again.
 */
export function parseCsvRecord(text: string): string[] | undefined {
  const fields: string[] = [];
  let field = "";
  let i = 0;
  let quoted = false;
  let atFieldStart = true;
  while (i < text.length) {
    const c = text[i] as string;
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 2;
          continue;
        }
        quoted = false;
      } else {
        field += c;
      }
    } else if (c === '"' && atFieldStart) {
      quoted = true;
      atFieldStart = false;
    } else if (c === ",") {
      fields.push(field);
      field = "";
      atFieldStart = true;
    } else {
      // Text after a closing quote (`"a"b`) is kept rather than refused: lenient like most readers.
      field += c;
      atFieldStart = false;
    }
    i++;
  }
  if (quoted) return undefined;
  fields.push(field);
  return fields;
}
