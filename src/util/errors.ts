/**
 * Every error a user can cause carries what was wrong and what to do about it.
 * The CLI prints `message` and `hint`; `code` is stable for scripts and tests.
 */
export class CohortError extends Error {
  readonly code: string;
  readonly hint: string | undefined;

  constructor(code: string, message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CohortError';
    this.code = code;
    this.hint = hint;
  }

  /** One line for a person: the message, then what to do. */
  describe(): string {
    return this.hint ? `${this.message}\n  hint: ${this.hint}` : this.message;
  }
}

export function isCohortError(e: unknown): e is CohortError {
  return e instanceof CohortError;
}
