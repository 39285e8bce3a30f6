import { BerthError } from '@berth/sys';
import type { SpecProblem } from './types.js';

function describeProblem(problem: SpecProblem): string {
  return problem.path === '' ? problem.message : `${problem.path}: ${problem.message}`;
}

/** The message SpecError uses: one line for one problem, a count and one indented line each otherwise. */
export function formatProblems(problems: readonly SpecProblem[], file?: string): string {
  const first = problems[0];
  if (first?.line !== undefined && problems.length === 1) {
    const where =
      file === undefined
        ? `line ${first.line} column ${first.column}`
        : `${file}:${first.line}:${first.column}`;
    return `${where}: ${first.message}`;
  }
  const label = file ?? 'invalid spec';
  if (problems.length === 1 && first) return `${label}: ${describeProblem(first)}`;
  const lines = problems.map((problem) => `  ${describeProblem(problem)}`);
  return [`${label}: ${problems.length} problems`, ...lines].join('\n');
}

/** A config.json that is not valid JSON or breaks the runtime-spec; `problems` lists every finding. */
export class SpecError extends BerthError {
  declare readonly code: 'EINVALIDSPEC';
  /** 'parse' for JSON syntax errors, 'validate' for runtime-spec violations */
  declare readonly op: 'parse' | 'validate';
  readonly problems: SpecProblem[];
  readonly file?: string;

  constructor(problems: SpecProblem[], file?: string) {
    super(formatProblems(problems, file), {
      code: 'EINVALIDSPEC',
      op: problems[0]?.line !== undefined ? 'parse' : 'validate',
      ...(file !== undefined ? { path: file } : {}),
    });
    this.name = 'SpecError';
    this.problems = problems;
    if (file !== undefined) this.file = file;
  }
}
