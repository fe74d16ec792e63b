import { describe, expect, it } from 'vitest';
import { LEGACY_2016_LARGEST_MIGRATED_FLEET, legacyScaleNote } from '../../demo/legacy-scale.ts';

describe('legacyScaleNote', () => {
  it('says why a 2016 legacy run above the measured limit may not finish, and what reaches 15,000', () => {
    const note = legacyScaleNote(15_000, 'one-thread-per-connection', '2016', undefined);
    expect(note).toContain('15,000 hypervisors on the 2016 legacy');
    expect(note).toContain(`stopped delivering at ${LEGACY_2016_LARGEST_MIGRATED_FLEET.toLocaleString('en-US')}`);
    expect(note).toContain('docs/legacy-2016.md');
    expect(note).toContain('--god-query optimized --thread-handling pool-of-threads');
  });

  it('is silent up to the limit and for the kinder legacies', () => {
    expect(legacyScaleNote(LEGACY_2016_LARGEST_MIGRATED_FLEET, 'one-thread-per-connection', '2016', undefined)).toBeUndefined();
    expect(legacyScaleNote(15_000, 'pool-of-threads', '2016', undefined)).toBeUndefined();
    expect(legacyScaleNote(15_000, 'one-thread-per-connection', 'optimized', undefined)).toBeUndefined();
    expect(legacyScaleNote(15_000, 'one-thread-per-connection', '2016', 8)).toBeUndefined();
  });
});
