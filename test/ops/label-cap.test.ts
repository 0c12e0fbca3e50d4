/** The metrics' label cap, on its own: first come keep their series, later ones fold into "other". */
import { describe, expect, it } from 'vitest';
import { LabelCap, OTHER_LABEL } from '../../src/observe/label-cap.js';

describe('LabelCap', () => {
  it('admits the first `cap` labels for good and folds the rest', () => {
    let cap = 2;
    const c = new LabelCap(() => cap);
    expect(['a', 'b', 'c', 'a', 'b', 'd'].map((l) => c.name(l))).toEqual(['a', 'b', OTHER_LABEL, 'a', 'b', OTHER_LABEL]);
    // A larger cap (reload) admits labels seen from then on; a smaller one evicts nobody.
    cap = 3;
    expect(c.name('c')).toBe('c');
    cap = 1;
    expect([c.name('a'), c.name('c'), c.name('e')]).toEqual(['a', 'c', OTHER_LABEL]);
    expect(c.size).toBe(3);
  });

  it('a cap of 0 folds every label', () => {
    const c = new LabelCap(() => 0);
    expect(c.name('a')).toBe(OTHER_LABEL);
  });
});
