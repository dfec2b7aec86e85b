#!/usr/bin/env node
/**
 * The `raftqueue` command: `node`, `serve` and `demo`. Subcommand modules are imported only when
 * chosen, so `--help` and startup stay fast (a member listens within 500 ms of launch).
 */
import { EXIT_USAGE, UsageError } from './args.js';

const USAGE = `usage: raftqueue <command> [flags]

commands:
  node    run one cluster member:  raftqueue node --id n1 --peers n1=127.0.0.1:7001,... --data-dir DIR
          or join a running one:    raftqueue node --id n4 --join 127.0.0.1:7001 --listen 127.0.0.1:7004 --data-dir DIR
  members list, add, remove members or move leadership:  raftqueue members list --http 127.0.0.1:8001
  serve   run member N of a course-style config file:  raftqueue serve --config FILE --index N
  demo    start a local 3-process cluster, publish, kill the leader, check nothing was lost

Run 'raftqueue <command> --help' for the flags of each command.
`;

async function main(argv: readonly string[]): Promise<void> {
  const [command, ...rest] = argv;
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
      await runMember(parsed.member);
      return;
    }
    case 'members': {
      const { runMembers } = await import('./members-command.js');
      process.exitCode = await runMembers(rest);
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
    const help = error.command ? `raftqueue ${error.command} --help` : 'raftqueue --help';
    process.stderr.write(`raftqueue${error.command ? ` ${error.command}` : ''}: ${error.message}\n(see '${help}')\n`);
    process.exit(EXIT_USAGE);
  }
  process.stderr.write(`raftqueue: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exit(1);
});
