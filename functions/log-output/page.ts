/** `<ISO-8601 timestamp>: <uuid>.`, the line log-output prints every 5 s and shows on `GET /`. */
export function stampLine(now: Date, instanceId: string): string {
  return `${now.toISOString()}: ${instanceId}.`;
}

/** The body of `GET /`: the message (left out when unset), the stamp line, the count. */
export function pageText(message: string | undefined, stamp: string, pongs: number): string {
  return [message, stamp, `Ping / Pongs: ${pongs}`].filter((line) => line !== undefined).join('\n');
}
