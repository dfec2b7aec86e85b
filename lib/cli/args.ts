/**
 * Argument parsing shared by the subcommands: node:util parseArgs in strict mode, with every
 * failure turned into a UsageError (exit code 2) that names the flag and points at --help.
 */
import { parseArgs } from 'node:util';

/** Exit code of a clean stop (SIGTERM or SIGINT: leadership handed over, storage closed). */
export const EXIT_OK = 0;

/** Exit code of a member that failed (the reason printed on one line). */
export const EXIT_FAILED = 1;

/**
 * Exit code of a bad command line (the convention of getopt-based tools), and of a configuration
 * the member refuses at start (INVALID_OPTIONS, IDENTITY_MISMATCH): retrying it unchanged fails
 * again, so a supervisor should not restart it.
 */
export const EXIT_USAGE = 2;

/** Exit code of a member that was removed from its cluster: restarting it rejoins nothing. */
export const EXIT_REMOVED = 3;

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

/**
 * The --help text of a subcommand: usage line, description, one line per flag, then `trailer`
 * (e.g. an "exit codes:" section) when given.
 */
export function helpText(command: string, usage: string, description: string, specs: FlagSpecs, trailer?: string): string {
  const rows = Object.entries(specs).map(([name, spec]) => [`--${name}${spec.value ? ` ${spec.value}` : ''}`, spec.help + (spec.required ? ' (required)' : '')] as const);
  rows.push(['--help', 'print this help and exit'], ['--version', 'print the version of raftqueue and exit']);
  const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
  const lines = rows.map(([flag, help]) => `  ${flag.padEnd(width)}${help.replace(/\n/g, `\n  ${' '.repeat(width)}`)}`);
  return `usage: raftqueue ${command} ${usage}\n\n${description}\n\nflags:\n${lines.join('\n')}\n${trailer === undefined ? '' : `\n${trailer}`}`;
}

/** Parses an integer flag value within [min, max]; a UsageError otherwise. */
export function intFlag(command: string, name: string, value: string, min: number, max: number): number {
  if (!/^\d+$/.test(value)) throw new UsageError(`--${name} must be an integer, got '${value}'`, command);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name} must be between ${min} and ${max}, got ${n}`, command);
  return n;
}

/** 'host:port' or '[v6]:port'; the port is checked separately so its range can be named. */
const HOST_PORT = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d+)$/;

const PORT_MAX = 65_535;

/**
 * Splits `address` ('host:port' or '[v6]:port'); undefined when malformed, and a UsageError
 * naming `item` when the port is outside 1..65535 (the OS would refuse it only at listen or
 * connect time, long after the command line was accepted).
 */
function splitAddress(command: string, name: string, address: string, item: string): { host: string; port: number } | undefined {
  const m = HOST_PORT.exec(address);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > PORT_MAX) throw new UsageError(`--${name}: port ${m[3] as string} in '${item}' is not between 1 and ${PORT_MAX}`, command);
  return { host: (m[1] ?? m[2]) as string, port };
}

/**
 * The form two addresses are compared in: host lower-cased, port as a number. Names are not
 * resolved, so 'localhost:7001' and '127.0.0.1:7001' count as different.
 */
export function addressKey(host: string, port: number): string {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  return `${bare.includes(':') ? `[${bare}]` : bare}:${port}`;
}

/**
 * Parses 'id=host:port,id=host:port' into a record (insertion order kept). Malformed items,
 * ports outside 1..65535, duplicate ids and two ids with one address are UsageErrors naming the
 * items.
 */
export function parsePeerList(command: string, name: string, value: string): Record<string, string> {
  const out: Record<string, string> = {};
  const owners = new Map<string, string>();
  for (const item of value.split(',').map((s) => s.trim()).filter((s) => s.length > 0)) {
    const eq = item.indexOf('=');
    const id = item.slice(0, eq);
    const address = item.slice(eq + 1);
    const split = eq > 0 ? splitAddress(command, name, address, item) : undefined;
    if (split === undefined) throw new UsageError(`--${name}: expected id=host:port, got '${item}'`, command);
    if (out[id] !== undefined) throw new UsageError(`--${name}: id '${id}' appears twice`, command);
    const key = addressKey(split.host, split.port);
    const other = owners.get(key);
    if (other !== undefined) throw new UsageError(`--${name}: '${other}' and '${id}' have the same address ${address}; each member needs its own`, command);
    owners.set(key, id);
    out[id] = address;
  }
  if (Object.keys(out).length === 0) throw new UsageError(`--${name} lists no members`, command);
  return out;
}

/** Splits 'host:port' (or '[v6]:port'); a UsageError when malformed or the port is outside 1..65535. */
export function parseHostPort(command: string, name: string, value: string): { host: string; port: number } {
  const split = splitAddress(command, name, value, value);
  if (split === undefined) throw new UsageError(`--${name}: expected host:port, got '${value}'`, command);
  return split;
}
