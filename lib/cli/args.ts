/**
 * Argument parsing shared by the subcommands: node:util parseArgs in strict mode, with every
 * failure turned into a UsageError (exit code 2) that names the flag and points at --help.
 */
import { parseArgs } from 'node:util';

/** Exit code of a bad command line (the convention of getopt-based tools). */
export const EXIT_USAGE = 2;

/** A bad command line: the message says what is wrong; the process exits with code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly command: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** One flag of a subcommand, with the text `--help` prints for it. */
export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  /** Shown in --help after the flag, e.g. 'ID' in '--id ID'. */
  readonly value?: string;
  readonly help: string;
  readonly required?: boolean;
}

/** A subcommand's flags by name (without the leading dashes). */
export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

/** Parsed flags: strings for string flags, booleans for boolean flags (absent when not given). */
export type ParsedFlags = Record<string, string | boolean | undefined>;

/**
 * Parses `argv` (the arguments after the subcommand) against `specs`. Unknown flags, missing
 * values, positional arguments and missing required flags throw a UsageError. `--help` is
 * always accepted and reported as `help: true` without checking required flags.
 */
export function parseFlags(command: string, argv: readonly string[], specs: FlagSpecs): ParsedFlags {
  const options: Record<string, { type: 'string' | 'boolean' }> = { help: { type: 'boolean' } };
  for (const [name, spec] of Object.entries(specs)) options[name] = { type: spec.type };
  let values: ParsedFlags;
  try {
    const parsed = parseArgs({ args: [...argv], options, strict: true, allowPositionals: false });
    values = parsed.values as ParsedFlags;
  } catch (error) {
    throw new UsageError(describeParseError(error), command);
  }
  if (values['help'] === true) return values;
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.required && values[name] === undefined) throw new UsageError(`missing required flag --${name}`, command);
    const v = values[name];
    if (typeof v === 'string' && v.length === 0) throw new UsageError(`flag --${name} needs a non-empty value`, command);
  }
  return values;
}

function describeParseError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  // parseArgs messages are clear but long ("... To specify a positional argument starting with
  // a '-' place it at the end of the command after '--' ..."): keep the first sentence.
  const first = message.split(/\.\s/)[0] ?? message;
  return first.replace(/\.$/, '');
}

/** The --help text of a subcommand: usage line, description, then one line per flag. */
export function helpText(command: string, usage: string, description: string, specs: FlagSpecs): string {
  const rows = Object.entries(specs).map(([name, spec]) => [`--${name}${spec.value ? ` ${spec.value}` : ''}`, spec.help + (spec.required ? ' (required)' : '')] as const);
  rows.push(['--help', 'print this help and exit']);
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  const lines = rows.map(([flag, help]) => `  ${flag.padEnd(width)}${help.replace(/\n/g, `\n  ${' '.repeat(width)}`)}`);
  return `usage: raftqueue ${command} ${usage}\n\n${description}\n\nflags:\n${lines.join('\n')}\n`;
}

/** Parses an integer flag value within [min, max]; a UsageError otherwise. */
export function intFlag(command: string, name: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be an integer, got '${value}'`, command);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`, command);
  return n;
}

/**
 * Parses 'id=host:port,id=host:port' into a record (insertion order kept). Duplicate ids and
 * malformed items are UsageErrors naming the item.
 */
export function parsePeerList(command: string, name: string, value: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)) {
    const eq = item.indexOf('=');
    const id = item.slice(0, eq);
    const address = item.slice(eq + 1);
    if (eq <= 0 || !/^(?:\[[0-9A-Fa-f:.]+\]|[^\s:[\]]+):\d{1,5}$/.test(address)) {
      throw new UsageError(`--${name}: expected id=host:port, got '${item}'`, command);
    }
    if (out[id] !== undefined) throw new UsageError(`--${name}: id '${id}' appears twice`, command);
    out[id] = address;
  }
  if (Object.keys(out).length === 0) throw new UsageError(`--${name} lists no members`, command);
  return out;
}

/** Splits 'host:port' (or '[v6]:port'); a UsageError when malformed. */
export function parseHostPort(command: string, name: string, value: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65_535) throw new UsageError(`--${name}: expected host:port, got '${value}'`, command);
  return { host: (m[1] ?? m[2]) as string, port };
}
