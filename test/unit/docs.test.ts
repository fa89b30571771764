import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';

const DOC_PATH = 'docs/configuration.md';
const DOC = readFileSync(new URL(`../../${DOC_PATH}`, import.meta.url), 'utf8');

/** The parts of zod's internal definition that say where an object's keys are. */
interface Schema {
  _zod: { def: { type: string; shape?: Record<string, Schema>; innerType?: Schema; in?: Schema; out?: Schema; options?: Schema[]; values?: unknown[] } };
}

/**
 * The object shapes a value may have, looking through defaults, optionals, preprocessing, transforms and
 * unions: there is no public API for this, so it reads zod's definitions (the sanity checks below catch a
 * zod upgrade that moves them).
 */
function shapesOf(schema: Schema): Record<string, Schema>[] {
  const def = schema._zod.def;
  switch (def.type) {
    case 'object':
      return [def.shape!];
    case 'optional':
    case 'nullable':
    case 'default':
    case 'prefault':
    case 'readonly':
    case 'catch':
    case 'nonoptional':
      return shapesOf(def.innerType!);
    case 'pipe':
      return [...shapesOf(def.in!), ...shapesOf(def.out!)];
    case 'union':
      return def.options!.flatMap(shapesOf);
    default:
      return [];
  }
}

/** Dotted paths of every key under `shape`: the leaves, and with `inner`, the objects that hold them. */
function keyPaths(shape: Record<string, Schema>, prefix: string, inner = false): string[] {
  return Object.entries(shape).flatMap(([key, value]) => {
    const path = `${prefix}${key}`;
    const below = shapesOf(value).flatMap((s) => keyPaths(s, `${path}.`, inner));
    return below.length === 0 ? [path] : inner ? [path, ...below] : below;
  });
}

const [top] = shapesOf(configSchema as unknown as Schema);
const { sink, ...rest } = top!;
/** Each sink type's own keys, by the literal value of its `type`. */
const sinks = shapesOf(sink!).map((shape) => ({ type: String(shape.type!._zod.def.values![0]), shape }));

/** The part of the doc under the heading that names `sink.type: <type>`, up to the next heading of any level. */
function sinkSection(type: string): string {
  const lines = DOC.split('\n');
  const start = lines.findIndex((l) => /^#+ /.test(l) && l.includes(`\`sink.type: ${type}\``));
  if (start < 0) return '';
  const end = lines.findIndex((l, i) => i > start && /^#+ /.test(l));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

describe(`${DOC_PATH} documents the config schema`, () => {
  it('finds the keys in the schema (the walk still understands zod)', () => {
    expect(keyPaths(rest, '').length).toBeGreaterThan(15);
    expect(sinks.map((s) => s.type).sort()).toEqual(['discard', 'jsonl', 'kafka', 'mysql', 'postgres', 'stdout']);
  });

  it.each(keyPaths(rest, ''))('names `%s`', (path) => {
    expect(DOC, `add \`${path}\` to ${DOC_PATH}`).toContain(`\`${path}\``);
  });

  it.each(sinks.map((s) => s.type))('names each key of sink type %s in its section', (type) => {
    expect(DOC).toContain('`sink.type`');
    const section = sinkSection(type);
    expect(section, `${DOC_PATH} needs a heading with \`sink.type: ${type}\``).not.toBe('');
    const shape = sinks.find((s) => s.type === type)!.shape;
    const missing = keyPaths(shape, 'sink.').filter((path) => path !== 'sink.type' && !section.includes(`\`${path}\``));
    expect(missing, `document these under the \`sink.type: ${type}\` heading of ${DOC_PATH}`).toEqual([]);
  });

  it('names no key the schema lacks', () => {
    const known = new Set([...keyPaths(rest, '', true), 'sink', ...sinks.flatMap((s) => keyPaths(s.shape, 'sink.', true))]);
    const sections = Object.keys(top!).join('|');
    const named = [...DOC.matchAll(new RegExp(`\`((?:${sections})\\.[A-Za-z][A-Za-z.]*)`, 'g'))].map((m) => m[1]!);
    expect(named.filter((path) => !known.has(path))).toEqual([]);
  });
});
