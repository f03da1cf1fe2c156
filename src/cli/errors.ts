// Errors that are the user's mistake (a bad flag, a missing file): the CLI prints them as one line
// `incept: error: ...` with exit status 1 and no stack trace.
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
