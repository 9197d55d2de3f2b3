// A smoothed round-trip time, as TCP computes SRTT (RFC 6298 §2): the first
// sample sets it, later ones move it by 1/8 of the difference.

export class RttEstimator {
  private srtt: number | undefined;

  observe(seconds: number): void {
    if (!(seconds >= 0) || !Number.isFinite(seconds)) throw new Error(`rtt: invalid sample ${seconds}`);
    this.srtt = this.srtt === undefined ? seconds : this.srtt + (seconds - this.srtt) / 8;
  }

  /** Seconds; undefined until the first sample. */
  get seconds(): number | undefined {
    return this.srtt;
  }

  reset(): void {
    this.srtt = undefined;
  }
}
