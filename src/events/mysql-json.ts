/**
 * MySQL's binary JSON format (the JSON column's storage and binlog form, `sql-common/json_binary.cc`) rendered
 * as the text the server itself prints for the document (`Json_wrapper::to_string`, what `CAST(j AS CHAR)` and
 * a SELECT return): `", "` and `": "` separators, object keys in stored order, DOUBLE as MySQL's my_gcvt prints
 * it, DECIMAL with its scale, temporal values as quoted text, other opaque values as `"base64:typeN:…"`.
 * zongji's own decoder turns the document into JS values first, which loses the difference between
 * 1.0 and 1, 12.50 and 12.5, a DECIMAL and a string.
 */

const SMALL_OBJECT = 0x00;
const LARGE_OBJECT = 0x01;
const SMALL_ARRAY = 0x02;
const LARGE_ARRAY = 0x03;
const LITERAL = 0x04;
const INT16 = 0x05;
const UINT16 = 0x06;
const INT32 = 0x07;
const UINT32 = 0x08;
const INT64 = 0x09;
const UINT64 = 0x0a;
const DOUBLE = 0x0b;
const STRING = 0x0c;
const OPAQUE = 0x0f;

const LITERALS = ['null', 'true', 'false'];

/** Field types of opaque values that print as something other than base64 (`enum_field_types`). */
const FIELD_TIMESTAMP = 7;
const FIELD_DATE = 10;
const FIELD_TIME = 11;
const FIELD_DATETIME = 12;
const FIELD_NEWDECIMAL = 246;

/** The server's text of one binary JSON document. Rows that predate an added JSON NOT NULL column hold an empty value, which MySQL reads as null. */
export function renderMysqlJson(doc: Buffer): string {
  if (doc.length === 0) return 'null';
  return renderValue(doc, doc[0]!, 1);
}

function renderValue(doc: Buffer, type: number, at: number): string {
  switch (type) {
    case SMALL_OBJECT:
      return renderContainer(doc, at, false, true);
    case LARGE_OBJECT:
      return renderContainer(doc, at, true, true);
    case SMALL_ARRAY:
      return renderContainer(doc, at, false, false);
    case LARGE_ARRAY:
      return renderContainer(doc, at, true, false);
    case LITERAL:
      return LITERALS[doc[at]!]!;
    case INT16:
      return String(doc.readInt16LE(at));
    case UINT16:
      return String(doc.readUInt16LE(at));
    case INT32:
      return String(doc.readInt32LE(at));
    case UINT32:
      return String(doc.readUInt32LE(at));
    case INT64:
      return doc.readBigInt64LE(at).toString();
    case UINT64:
      return doc.readBigUInt64LE(at).toString();
    case DOUBLE:
      return renderJsonDouble(doc.readDoubleLE(at));
    case STRING: {
      const { length, start } = readLength(doc, at);
      return JSON.stringify(doc.toString('utf8', start, start + length));
    }
    case OPAQUE: {
      const { length, start } = readLength(doc, at + 1);
      return renderOpaque(doc[at]!, doc.subarray(start, start + length));
    }
    default:
      throw new Error(`MySQL binary JSON: unknown value type ${type} at byte ${at}`);
  }
}

/**
 * An object or array starting at `at`: element count, byte size, (objects) key entries, then value entries
 * whose offsets, like the key offsets, count from `at`. Small containers use 2-byte counts and offsets, large
 * ones 4; scalars that fit the offset's width are stored in the entry itself.
 */
function renderContainer(doc: Buffer, at: number, large: boolean, isObject: boolean): string {
  const width = large ? 4 : 2;
  const read = (pos: number) => (large ? doc.readUInt32LE(pos) : doc.readUInt16LE(pos));
  const count = read(at);
  const keyEntries = at + 2 * width;
  const valueEntries = keyEntries + (isObject ? count * (width + 2) : 0);
  const parts: string[] = new Array(count);
  for (let i = 0; i < count; i++) {
    const entry = valueEntries + i * (1 + width);
    const type = doc[entry]!;
    const value = renderValue(doc, type, isInlined(type, large) ? entry + 1 : at + read(entry + 1));
    if (!isObject) {
      parts[i] = value;
      continue;
    }
    const keyEntry = keyEntries + i * (width + 2);
    const keyStart = at + read(keyEntry);
    parts[i] = `${JSON.stringify(doc.toString('utf8', keyStart, keyStart + doc.readUInt16LE(keyEntry + width)))}: ${value}`;
  }
  return isObject ? `{${parts.join(', ')}}` : `[${parts.join(', ')}]`;
}

function isInlined(type: number, large: boolean): boolean {
  return type === LITERAL || type === INT16 || type === UINT16 || (large && (type === INT32 || type === UINT32));
}

/** A length as 7 bits per byte, least significant first, the high bit saying another byte follows. */
function readLength(doc: Buffer, at: number): { length: number; start: number } {
  let length = 0;
  let pos = at;
  for (let shift = 0; ; shift += 7) {
    const byte = doc[pos++]!;
    length += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return { length, start: pos };
  }
}

function renderOpaque(fieldType: number, data: Buffer): string {
  switch (fieldType) {
    case FIELD_NEWDECIMAL:
      return decimalText(data.subarray(2), data[0]!, data[1]!);
    case FIELD_DATE:
      return `"${datePart(data.readBigInt64LE(0))}"`;
    case FIELD_DATETIME:
    case FIELD_TIMESTAMP: {
      const packed = data.readBigInt64LE(0);
      return `"${datePart(packed)} ${clockPart(Number((packed >> 24n) & 0x1ffffn), '')}.${microseconds(packed)}"`;
    }
    case FIELD_TIME: {
      const packed = data.readBigInt64LE(0);
      const magnitude = packed < 0n ? -packed : packed;
      return `"${clockPart(Number(magnitude >> 24n), packed < 0n ? '-' : '')}.${microseconds(magnitude)}"`;
    }
    default:
      return `"base64:type${fieldType}:${data.toString('base64')}"`;
  }
}

/**
 * Temporal values are MySQL's packed longlongs: (((year * 13 + month) << 5 | day) << 17 | hour << 12 | minute << 6
 * | second) << 24 | microseconds, negated for a negative TIME (whose hours take the date's bits).
 */
function datePart(packed: bigint): string {
  const ymd = Number(packed >> 41n);
  const yearMonth = ymd >> 5;
  return `${pad(Math.floor(yearMonth / 13), 4)}-${pad(yearMonth % 13, 2)}-${pad(ymd & 31, 2)}`;
}

/** hour << 12 | minute << 6 | second; a TIME's hours go up to 838. */
function clockPart(hms: number, sign: string): string {
  return `${sign}${pad(hms >> 12, 2)}:${pad((hms >> 6) & 63, 2)}:${pad(hms & 63, 2)}`;
}

function microseconds(packed: bigint): string {
  return pad(Number(packed & 0xffffffn), 6);
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

const DIGITS_PER_GROUP = 9;
const GROUP_BYTES = 4;
/** Bytes holding a leftover group of 0..8 digits. */
const LEFTOVER_BYTES = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4];

/**
 * MySQL's binary DECIMAL (`bin2decimal`): big-endian groups of 9 digits in 4 bytes, the leftover digits of the
 * integer part first and of the fraction last in fewer bytes; the top bit set for non-negative values, and every
 * bit inverted for negative ones. Printed like the server: no leading zeros, exactly `scale` fraction digits.
 */
export function decimalText(data: Buffer, precision: number, scale: number): string {
  const negative = (data[0]! & 0x80) === 0;
  const bytes = Buffer.from(data);
  bytes[0]! ^= 0x80;
  if (negative) for (let i = 0; i < bytes.length; i++) bytes[i]! ^= 0xff;
  const integerDigits = precision - scale;
  let pos = 0;
  const group = (digits: number): string => {
    const size = digits === DIGITS_PER_GROUP ? GROUP_BYTES : LEFTOVER_BYTES[digits]!;
    const text = size === 0 ? '' : pad(bytes.readUIntBE(pos, size), digits);
    pos += size;
    return text;
  };
  let integer = group(integerDigits % DIGITS_PER_GROUP);
  for (let i = 0; i < Math.floor(integerDigits / DIGITS_PER_GROUP); i++) integer += group(DIGITS_PER_GROUP);
  let fraction = '';
  for (let i = 0; i < Math.floor(scale / DIGITS_PER_GROUP); i++) fraction += group(DIGITS_PER_GROUP);
  fraction += group(scale % DIGITS_PER_GROUP);
  const text = `${integer.replace(/^0+/, '') || '0'}${scale > 0 ? `.${fraction}` : ''}`;
  return negative ? `-${text}` : text;
}

/**
 * my_gcvt writes 'f' format for point positions (the decimal exponent of 0.DDD) from -14 up, except beyond 15
 * when all digits are before the point: 1e16 rather than 10000000000000000, but 3938927522752580.5.
 */
const MIN_POINT_FOR_F_FORMAT = -14;
const MAX_POINT_FOR_F_FORMAT = 15;

/**
 * A JSON DOUBLE as MySQL prints it: the shortest digits that read back to the same double (the same digits
 * Number#toExponential gives), in my_gcvt's fixed or exponent format (`1e16`, `1.5e-16`, no `+`), with `.0`
 * appended when the text would otherwise read as an integer (`1.0`, `-0.0`, `100.0`).
 */
export function renderJsonDouble(x: number): string {
  const sign = x < 0 || Object.is(x, -0) ? '-' : '';
  const [mantissa, exponent] = Math.abs(x).toExponential().split('e') as [string, string];
  const digits = mantissa.replace('.', '');
  const point = Number(exponent) + 1;
  if (point < MIN_POINT_FOR_F_FORMAT || (point > MAX_POINT_FOR_F_FORMAT && point >= digits.length)) {
    return `${sign}${digits[0]}${digits.length > 1 ? `.${digits.slice(1)}` : ''}e${point - 1}`;
  }
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point < digits.length) return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  return `${sign}${digits}${'0'.repeat(point - digits.length)}.0`;
}
