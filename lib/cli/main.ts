#!/usr/bin/env node
/**
 * The `raftqueue` command: `node`, `serve`, `members` and `demo`. Subcommand modules are imported
 * only when chosen, so `--help` and startup stay fast (a member listens within 500 ms of launch).
 */
import { readFileSync } from 'node:fs';
import { EXIT_FAILED, EXIT_USAGE, UsageError } from './args.js';

const USAGE = `usage: raftqueue <command> [flags]

commands:
  node    run one cluster member:  raftqueue node --id n1 --peers n1=127.0.0.1:7001,... --data-dir DIR
          or join a running one:    raftqueue node --id n4 --join 127.0.0.1:7001 --listen 127.0.0.1:7004 --data-dir DIR
  members list, add, remove members or move leadership:  raftqueue members list --http 127.0.0.1:8001
  dlq     list, redrive or purge a topic's dead letters:  raftqueue dlq list orders --http 127.0.0.1:8001
  serve   run member N of a course-style config file:  raftqueue serve --config FILE --index N
  demo    start a local 3-process cluster, publish, kill the leader, check nothing was lost

Run 'raftqueue <command> --help' for the flags of each command,
'raftqueue --version' (or -v) for the version of this package.
`;

/**
 * The version in the package's own package.json, found from this file (dist/lib/cli/main.js),
 * not from the working directory, so an installed copy reports its own version.
 */
function packageVersion(): string {
  const url = new URL('../../../package.json', import.meta.url);
  let version: unknown;
  try {
    version = (JSON.parse(readFileSync(url, 'utf8')) as { version?: unknown }).version;
  } catch (error) {
    throw new Error(`cannot read the version from ${url.pathname}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
  }
  if (typeof version !== 'string') throw new Error(`${url.pathname} has no "version"`);
  return version;
}

/** '--version' among a subcommand's arguments (before a '--' that ends the flags). */
function asksVersion(args: readonly string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).includes('--version');
}

async function main(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === '--version' || command === '-v' || (command !== undefined && ['node', 'serve', 'members', 'dlq', 'demo'].includes(command) && asksVersion(rest))) {
    process.stdout.write(`${packageVersion()}\n`);
    return;
  }
  switch (command) {
    case 'node':
    case 'serve': {
      const { parseNodeCommand, parseServeCommand } = await import('./commands.js');
      const parsed = command === 'node' ? await parseNodeCommand(rest) : await parseServeCommand(rest);
      if ('help' in parsed) {
        process.stdout.write(parsed.help);
        return;
      }
      const { runMember } = await import('./member.js');
      await runMember(parsed.member, command);
      return;
    }
    case 'members': {
      const { runMembers } = await import('./members-command.js');
      process.exitCode = await runMembers(rest);
      return;
    }
    case 'dlq': {
      const { runDlq } = await import('./dlq-command.js');
      process.exitCode = await runDlq(rest);
      return;
    }
    case 'demo': {
      const { runDemo } = await import('./demo.js');
      process.exitCode = await runDemo(rest);
      return;
    }
    case '--help':
    case '-h':
    case 'help':
      process.stdout.write(USAGE);
      return;
    case undefined:
      throw new UsageError('no command given', '');
    default:
      throw new UsageError(`unknown command '${command}'`, '');
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof UsageError) {
    // One line, so a supervisor's log shows the whole reason wherever it cuts.
    const help = error.command ? `raftqueue ${error.command} --help` : 'raftqueue --help';
    process.stderr.write(`raftqueue${error.command ? ` ${error.command}` : ''}: ${error.message} (see '${help}')\n`);
    process.exit(EXIT_USAGE);
  }
  process.stderr.write(`raftqueue: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(EXIT_FAILED);
});
