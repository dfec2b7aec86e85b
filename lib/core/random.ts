/**
 * A seeded pseudo-random source, injected into the core so that every run is reproducible.
 *
 * sfc32 (Chris Doty-Humphrey's small fast counting generator): 128 bits of state, passes
 * PractRand to large sizes, and needs only 32-bit integer arithmetic.
 */

export interface Random {
  /** A uniformly distributed unsigned 32-bit integer. */
  nextU32(): number;
  /** A uniformly distributed integer in [0, maxExclusive). */
  int(maxExclusive: number): number;
  /** A float in [0, 1). */
  float(): number;
  /** True with probability `p`. */
  chance(p: number): boolean;
  /** An independent stream derived from this one's seed and `label` (not from its position). */
  fork(label: string): Random;
}

/** FNV-1a over a string: a stable 32-bit hash for deriving forked seeds. */
function hashLabel(label: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < label.length; i++) {
    h ^= label.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

/** splitmix32: spreads a seed into well-mixed state words. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) >>> 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

class Sfc32 implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(private readonly seed: number) {
    const st = { s: seed >>> 0 };
    this.a = splitmix32(st);
    this.b = splitmix32(st);
    this.c = splitmix32(st);
    this.d = 1;
    // Discard the first outputs: sfc32 mixes its state over its first few rounds.
    for (let i = 0; i < 12; i++) this.nextU32();
  }

  nextU32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t >>> 0;
  }

  int(maxExclusive: number): number {
    if (maxExclusive <= 1) return 0;
    return Math.floor(this.float() * maxExclusive);
  }

  float(): number {
    return this.nextU32() / 0x1_0000_0000;
  }

  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  fork(label: string): Random {
    return new Sfc32((this.seed ^ hashLabel(label) ^ 0x5bd1e995) >>> 0);
  }
}

/** A Random seeded by the low 32 bits of `seed`. */
export function createRandom(seed: number): Random {
  return new Sfc32(seed >>> 0);
}
