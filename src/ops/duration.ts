import prettyMilliseconds from 'pretty-ms';

/** A duration for people, in its two largest units: "2d 4h", "5m 3s", "12.5s". */
export function formatDuration(seconds: number): string {
  return prettyMilliseconds(seconds * 1000, { unitCount: 2, secondsDecimalDigits: seconds < 60 ? 1 : 0, millisecondsDecimalDigits: 0 });
}
