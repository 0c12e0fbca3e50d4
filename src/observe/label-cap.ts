/**
 * Bounds the label cardinality of metrics: the first `cap()` labels seen get their own series;
 * every later one is reported as `other`. Admission is sticky (a label keeps its series for the
 * life of the process) so that a counter never moves between series, and `cap` is read at each
 * call so a reload of metricsLabelCap applies to labels seen from then on.
 */
export const OTHER_LABEL = 'other';

export class LabelCap {
  private readonly admitted = new Set<string>();

  constructor(private readonly cap: () => number) {}

  /** The metric label value for `label`. */
  name(label: string): string {
    if (this.admitted.has(label)) return label;
    if (this.admitted.size < this.cap()) {
      this.admitted.add(label);
      return label;
    }
    return OTHER_LABEL;
  }

  get size(): number {
    return this.admitted.size;
  }
}
