/**
 * Pure majority arithmetic (§5.2 elections, §5.3-5.4 commitment).
 */

/** The number of members that form a majority of `size` voters. */
export function majority(size: number): number {
  return Math.floor(size / 2) + 1;
}

/**
 * The highest value that at least a majority of `values` reach: with matches [9, 7, 3] the
 * answer is 7, since two of three members hold index 7 or more. 0 for no voters.
 */
export function quorumMin(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((x, y) => y - x);
  return sorted[majority(values.length) - 1] ?? 0;
}

export type VoteResult = 'won' | 'lost' | 'pending';

/** The outcome of an election among `voters` given the responses received so far. */
export function voteResult(voters: readonly string[], votes: ReadonlyMap<string, boolean>): VoteResult {
  let granted = 0;
  let rejected = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === true) granted++;
    else if (v === false) rejected++;
  }
  const need = majority(voters.length);
  if (granted >= need) return 'won';
  if (rejected > voters.length - need) return 'lost';
  return 'pending';
}
