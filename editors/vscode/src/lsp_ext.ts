// The protocol extensions of claude-lsp, typed. Mirrors docs/lsp-extensions.md and
// src/protocol/lsp_ext.rs: change all three together. `npm run typecheck` fails when a type here differs
// from the Rust one (test/protocol_mirror.ts, against the schemas in protocol/).
//
// This module is pure (no `vscode` import) so the unit and integration tests can use it.

import {
    NotificationType,
    RequestType,
    type Diagnostic,
    type ProgressToken,
    type Range,
    type TextDocumentIdentifier,
    type WorkspaceEdit,
} from 'vscode-languageserver-protocol';

export type Action = 'generate' | 'analyze' | 'refactor' | 'review';
export type Depth = 'quick' | 'normal' | 'deep';
export type Severity = 'error' | 'warning' | 'info' | 'hint';
export type ReviewScope = 'selection' | 'file' | 'changes' | 'folder' | 'workspace';

/** Parameters of the four action requests and the four action commands. */
export interface ActionParams {
    textDocument: TextDocumentIdentifier;
    /** Absent: the whole document. */
    range?: Range;
    /** Required for generate and refactor. */
    instruction?: string;
    /** Continue that conversation. */
    sessionId?: string;
    /** With `sessionId`: branch a new conversation off that one. */
    fork?: boolean;
    /** The server reports `$/progress` on this token. */
    workDoneToken?: ProgressToken;
    /** Diagnostics in the range, for the agent to see. */
    diagnostics?: Diagnostic[];
    /** analyze, review */
    depth?: Depth;
    /** analyze; in a folder or workspace scope, keep the test files in it */
    includeTests?: boolean;
    /** review */
    minSeverity?: Severity;
    /** review; "changes": the uncommitted changes; "folder" and "workspace" (analyze too): the
     * files are listed for the agent, which reads what it needs */
    scope?: ReviewScope;
    /** review: ask for a fix with each finding */
    fix?: boolean;
    /** generate: where new files go; a folder scope: the folder (default: the file's); relative to
     * the workspace */
    directory?: string;
    /** The model of this run (default: the `model` setting). */
    model?: string;
    /** Run even when the result cache holds an answer for these inputs (analyze, review). */
    noCache?: boolean;
}

export type FileAction = 'created' | 'modified' | 'deleted' | 'renamed';

export interface ChangedFile {
    uri: string;
    action: FileAction;
}

export interface RunMetadata {
    durationMs: number;
    numTurns: number;
    inputTokens: number;
    outputTokens: number;
    cacheReadTokens: number;
    costUsd: number;
    model?: string;
    /** Answered from the result cache: no API call (the counts are zero). */
    cached?: boolean;
}

export type Category = 'bug' | 'security' | 'performance' | 'correctness' | 'maintainability' | 'style' | 'test';

/** A fix the server checked: `oldText` is exactly the text at the finding's range. */
export interface FindingFix {
    oldText: string;
    newText: string;
}

export interface RelatedLocation {
    uri: string;
    range: Range;
    message: string;
}

/** A finding of review/analyze, placed in its file. */
export interface Finding {
    /** Names it in `claude.applyFinding` / `claude.dismissFinding` and in its diagnostic's `data.findingId`. */
    id: string;
    uri: string;
    range: Range;
    severity: Severity;
    category: Category;
    title: string;
    explanation: string;
    suggestion?: string;
    fix?: FindingFix;
    related?: RelatedLocation[];
}

/** Argument of `claude.applyFinding` (id required) and `claude.dismissFinding` (no id: the whole file). */
export interface FindingRef {
    uri: string;
    findingId?: string;
}

/** Argument of `claude.applyChange` and `claude.discardChange` (`delivery: "review"`): no `changeId`, every change of the run. */
export interface ChangeRef {
    runId: string;
    changeId?: string;
}

export interface ActionResult {
    sessionId: string;
    /** The agent's answer, markdown. */
    text: string;
    /** Edit actions, when the run changed files. Never applied by the server. */
    edit?: WorkspaceEdit;
    findings?: Finding[];
    files: ChangedFile[];
    metadata: RunMetadata;
}

/** Counts that add up: one run's, a conversation's, a day's or a model's. */
export interface UsageCounts {
    runs: number;
    turns: number;
    inputTokens: number;
    outputTokens: number;
    cacheReadTokens: number;
    cacheCreationTokens: number;
    costUsd: number;
    durationMs: number;
}

/** What one run used (its own share). */
export interface RunUsage extends UsageCounts {
    model?: string;
    models?: Record<string, UsageCounts>;
}

/** The run that just ended: its usage fields sit directly in it. */
export interface LastRun extends RunUsage {
    sessionId: string;
}

/** A cheaper model that served runs of the same action about as well. */
export interface ModelSuggestion {
    action: string;
    model: string;
    cheaperModel: string;
    runs: number;
    cheaperRuns: number;
    avgCostUsd: number;
    cheaperAvgCostUsd: number;
}

export interface WorkspaceUsage {
    uri: string;
    today: UsageCounts;
    total: UsageCounts;
}

/** `claude/usage` result and `claude/usageChanged` notification: totals, by UTC day and by model. */
export interface UsageReport {
    /** Today (UTC), `YYYY-MM-DD`. */
    day: string;
    today: UsageCounts;
    total: UsageCounts;
    byDay: Record<string, UsageCounts>;
    byModel: Record<string, UsageCounts>;
    workspaces: WorkspaceUsage[];
    dailyBudgetUsd?: number;
    /** Today's cost per hour since today's first run (at least one hour). */
    burnRateUsdPerHour: number;
    /** Today's cost plus the burn rate over the hours left today (UTC). */
    projectedTodayUsd: number;
    /** A cheaper model that served runs of the same action about as well. */
    cheaperModel?: ModelSuggestion;
    /** In the notification: the run that just ended. */
    lastRun?: LastRun;
}

export interface UsageParams {
    /** The workspace of this document only (default: every workspace folder). */
    uri?: string;
}

export interface SessionsParams {
    /** Conversations about this document (default: every workspace folder's). */
    uri?: string;
    action?: Action;
    /** At most this many, newest first (default 100). */
    limit?: number;
}

export type Outcome = 'success' | 'error' | 'cancelled';

/** One run (turn) of a conversation. */
export interface RunRecord {
    action: Action;
    instruction?: string;
    startedAt: string;
    endedAt: string;
    outcome: Outcome;
    /** The answer's first line, or the error. */
    summary: string;
    usage: RunUsage;
}

/** One conversation of the session index. */
export interface SessionInfo {
    id: string;
    action: Action;
    uri: string;
    range?: Range;
    instruction?: string;
    startedAt: string;
    endedAt: string;
    outcome: Outcome;
    /** The latest run's summary. */
    summary: string;
    usage: UsageCounts;
    /** The workspace folder's path. */
    workspace: string;
    /** The staging mirror the CLI ran in (edit actions). */
    mirror?: string;
    /** The conversation this one was forked from. */
    parent?: string;
    runs: RunRecord[];
    /** Its CLI process, while one is kept alive for the next turn. */
    live?: { pid: number; idleSecs: number };
}

export interface SessionsResult {
    sessions: SessionInfo[];
}

export interface RunInfo {
    runId: string;
    action: Action;
    uri: string;
    startedAt: string;
}

export interface RunsResult {
    runs: RunInfo[];
}

/** `claude/estimate` parameters: the action's, plus which action. */
export interface EstimateParams extends ActionParams {
    action: Action;
}

/** `claude/estimate` result: an estimate of a run's cost, never a promise. */
export interface EstimateResult {
    /** The first API call: the prompt (characters / 4) plus the CLI's own system prompt and tools. */
    inputTokens: number;
    model?: string;
    /** The price table entry used (unknown models and the CLI's default: Sonnet). */
    pricedAs: string;
    /** One turn, a short answer. */
    costUsdLow: number;
    /** Three turns over the same context, a long answer. */
    costUsdHigh: number;
    /** The same in words. */
    message: string;
}

/** The custom method names (checked against the server's by test/protocol_mirror.ts). */
export const Method = {
    generate: 'claude/generate',
    analyze: 'claude/analyze',
    refactor: 'claude/refactor',
    review: 'claude/review',
    sessions: 'claude/sessions',
    session: 'claude/session',
    usage: 'claude/usage',
    runs: 'claude/runs',
    metrics: 'claude/metrics',
    audit: 'claude/audit',
    estimate: 'claude/estimate',
    output: 'claude/output',
    usageChanged: 'claude/usageChanged',
} as const;

export const generate = new RequestType<ActionParams, ActionResult, void>(Method.generate);
export const analyze = new RequestType<ActionParams, ActionResult, void>(Method.analyze);
export const refactor = new RequestType<ActionParams, ActionResult, void>(Method.refactor);
export const review = new RequestType<ActionParams, ActionResult, void>(Method.review);
export const sessions = new RequestType<SessionsParams, SessionsResult, void>(Method.sessions);
export const usage = new RequestType<UsageParams, UsageReport, void>(Method.usage);
export const estimate = new RequestType<EstimateParams, EstimateResult, void>(Method.estimate);
export const runs = new RequestType<Record<string, never>, RunsResult, void>(Method.runs);

export const actionRequests: Readonly<Record<Action, RequestType<ActionParams, ActionResult, void>>> =
    { generate, analyze, refactor, review };

export type OutputKind = 'text' | 'thinking' | 'toolUse' | 'toolResult' | 'result' | 'error';

/** `claude/output`: the agent's full stream, for an output channel. */
export interface OutputParams {
    runId: string;
    token?: ProgressToken;
    kind: OutputKind;
    text: string;
    tool?: string;
}

export const output = new NotificationType<OutputParams>(Method.output);
/** Server → client after each run, to clients that opt in (`usageNotifications`). */
export const usageChanged = new NotificationType<UsageReport>(Method.usageChanged);

/** `workspace/executeCommand` names. */
export const Command = {
    generate: 'claude.generate',
    analyze: 'claude.analyze',
    refactor: 'claude.refactor',
    review: 'claude.review',
    continue: 'claude.continue',
    cancel: 'claude.cancel',
    applyFinding: 'claude.applyFinding',
    dismissFinding: 'claude.dismissFinding',
    showUsage: 'claude.showUsage',
    applyChange: 'claude.applyChange',
    discardChange: 'claude.discardChange',
} as const;

/** What an action command answers at once; the run goes on in the background. */
export interface RunStarted {
    runId: string;
}

export interface CancelArgs {
    runId?: string;
}

export interface CancelResult {
    cancelled: number;
}

/** `data` of every error response from the server. */
export interface ErrorData {
    kind: string;
    retryable: boolean;
    hint: string;
}

export function isErrorData(value: unknown): value is ErrorData {
    if (typeof value !== 'object' || value === null) {
        return false;
    }
    const data = value as Record<string, unknown>;
    return typeof data.kind === 'string' && typeof data.retryable === 'boolean' && typeof data.hint === 'string';
}
