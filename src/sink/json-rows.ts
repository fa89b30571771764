/**
 * A row's JSON text as the row writers make it (JSON.stringify of one object: no whitespace, keys in column order),
 * read without building the object: a batch of snapshot rows is grouped by column list and turned into COPY text
 * straight from the events' text. Anything laid out otherwise is not matched, and its reader parses it instead.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;

/** What precedes each column's value in a row of these columns: `{"a":`, then `,"b":` and so on. */
export function rowHeads(names: readonly string[]): string[] {
  return names.map((n, i) => `${i === 0 ? '{' : ','}${JSON.stringify(n)}:`);
}

/** The index of the quote that closes the string whose opening quote is at `at`. */
export function stringEnd(json: string, at: number): number {
  let from = at + 1;
  for (;;) {
    const end = json.indexOf('"', from);
    if (end < 0) return -1;
    let slashes = 0;
    while (json.charCodeAt(end - 1 - slashes) === BACKSLASH) slashes++;
    if (slashes % 2 === 0) return end;
    from = end + 1;
  }
}

/** The index just after the value that starts at `at` (a string, a number, a literal, an object or an array). */
export function valueEnd(json: string, at: number): number {
  const c = json.charCodeAt(at);
  if (c === QUOTE) {
    const end = stringEnd(json, at);
    return end < 0 ? -1 : end + 1;
  }
  if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
    let depth = 0;
    for (let i = at; i < json.length; i++) {
      const d = json.charCodeAt(i);
      if (d === QUOTE) {
        i = stringEnd(json, i);
        if (i < 0) return -1;
      } else if (d === OPEN_OBJECT || d === OPEN_ARRAY) depth++;
      else if ((d === CLOSE_OBJECT || d === CLOSE_ARRAY) && --depth === 0) return i + 1;
    }
    return -1;
  }
  let i = at;
  while (i < json.length) {
    const d = json.charCodeAt(i);
    if (d === COMMA || d === CLOSE_OBJECT || d === CLOSE_ARRAY) break;
    i++;
  }
  return i > at ? i : -1;
}

/** Whether `json` is an object with exactly the columns of `heads`, in that order. */
export function hasColumns(json: string, heads: readonly string[]): boolean {
  let at = 0;
  for (const head of heads) {
    if (!json.startsWith(head, at)) return false;
    at = valueEnd(json, at + head.length);
    if (at < 0) return false;
  }
  return at === json.length - 1 && json.charCodeAt(at) === CLOSE_OBJECT;
}
