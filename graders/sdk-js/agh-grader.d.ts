// Types of agh-grader.js, so editors help while writing a grader.

export const API_VERSION: '0.2.0';

export type Verdict =
  | 'accepted' | 'wrong' | 'compile-error' | 'runtime-error'
  | 'time-limit' | 'memory-limit' | 'output-limit' | 'resource-limit';
export const Verdict: {
  readonly ACCEPTED: 'accepted'; readonly WRONG: 'wrong';
  readonly COMPILE_ERROR: 'compile-error'; readonly RUNTIME_ERROR: 'runtime-error';
  readonly TIME_LIMIT: 'time-limit'; readonly MEMORY_LIMIT: 'memory-limit';
  readonly OUTPUT_LIMIT: 'output-limit'; readonly RESOURCE_LIMIT: 'resource-limit';
};
export type Visibility = 'visible' | 'after-due-date' | 'after-published' | 'hidden';
export const Visibility: {
  readonly VISIBLE: 'visible'; readonly AFTER_DUE_DATE: 'after-due-date';
  readonly AFTER_PUBLISHED: 'after-published'; readonly HIDDEN: 'hidden';
};
export type Limit = 'processes' | 'memory' | 'file-size' | 'storage' | 'cpu-time' | 'wall-time' | 'output';

export class SubmissionError extends Error {}
export class HostError extends Error {
  readonly kind: 'refused' | 'not-found' | 'submission-state' | 'sandbox-lost' | 'too-large';
  readonly detail: string;
  readonly students: boolean;
}

export interface Asset { name: string; source: string; target: string }
export interface InfoOptions {
  wallTimeMs?: number; memoryBytes?: number; processes?: number; outputBytes?: number;
  fileSizeBytes?: number; tmpfsBytes?: number; fuel?: number; graderWallTimeMs?: number;
  assets?: Asset[];
}
export interface GraderInfo { name: string; version: string; apiVersion: string; image: string }
export function info(name: string, version: string, image: string, options?: InfoOptions): GraderInfo;
export function asset(name: string, source: string, target: string): Asset;

export class Result {
  readonly exitCode?: number;
  readonly signal?: string;
  readonly stdout: Uint8Array;
  readonly stderr: Uint8Array;
  readonly timedOut: boolean;
  readonly outOfMemory: boolean;
  readonly sandboxLost: boolean;
  readonly limit?: Limit;
  readonly verdict?: Verdict;
  readonly wallTimeMs: number;
  readonly cpuTimeMs: number;
  readonly peakMemoryBytes: number;
  readonly stdoutText: string;
  readonly stderrText: string;
  readonly succeeded: boolean;
}

export class Cmd {
  constructor(argv: string[]);
  args(...more: string[]): Cmd;
  stdin(data: string | Uint8Array): Cmd;
  cwd(folder: string): Cmd;
  env(name: string, value: string): Cmd;
  asGrader(): Cmd;
  timeoutMs(ms: number): Cmd;
  outputBytes(cap: number): Cmd;
  run(): Result;
  converse(student: Cmd): [Result, Result];
}

export function writeFile(path: string, contents: string | Uint8Array, readOnly?: boolean): void;
export function readFile(path: string, maxBytes?: number): Uint8Array;
export function placeAsset(name: string): void;
export function resetSandbox(...assets: string[]): void;
export function resetAfterLoss(...assets: string[]): string | null;
export function submissionFiles(): string[];
export function submissionFile(path: string): Uint8Array;
export function assetFiles(name: string): string[];
export function assetFile(name: string, path: string): Uint8Array;
export function assetText(name: string, path: string): string;
export function logInfo(message: string): void;
export function logWarn(message: string): void;

/** Most bytes (UTF-8) of one test's feedback the host keeps. */
export const MAX_FEEDBACK_BYTES: number;
/** `feedback` held to `MAX_FEEDBACK_BYTES`, ending with a line saying how much was cut. */
export function clipFeedback(feedback: string): string;

export interface TestResult {
  name: string; score: number; maxScore: number; verdict: Verdict; output: string; visibility: Visibility;
}
export class Test {
  constructor(name: string, points?: number);
  visibility(visibility: Visibility): Test;
  hidden(): Test;
  scored(score: number, verdict: Verdict, output?: string): TestResult;
  passed(output?: string): TestResult;
  failed(verdict?: Verdict, output?: string): TestResult;
  wrongOutput(expected: string, got: string): TestResult;
  notRun(why: string): TestResult;
  failedWith(run: Result, output?: string): TestResult;
}

export const compare: {
  exact(expected: string, got: string): boolean;
  ignoringWhitespace(expected: string, got: string): boolean;
  numeric(expected: string, got: string, tolerance?: number): boolean;
};
export const lines: {
  same(expected: string, got: string): boolean;
  sameUnordered(expected: string, got: string): boolean;
  firstDifference(expected: string, got: string, visibility?: Visibility): string;
};

export class Context {
  readonly submission: string;
  readonly settings: Record<string, string>;
  setting(name: string, fallback?: string): string | undefined;
}

export interface GraderDefinition {
  describe(settings: Record<string, string>): GraderInfo;
  grade(context: Context): TestResult[] | { tests: TestResult[]; output?: string };
}
export function defineGrader(definition: GraderDefinition): unknown;
