// The hand-written protocol types (src/lsp_ext.ts) against the wire types generated from the
// Rust ones (src/generated/lsp_ext.ts, `npm run protocol`). Types only: `tsc` (npm run
// typecheck) fails when a pair differs, naming the types that differ; nothing here runs.

import type * as wire from '../src/generated/lsp_ext';
import type * as ext from '../src/lsp_ext';

/** Exactly the same type, optional properties included. */
// eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters -- the known exact-equality idiom
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** Each hand-written type with the wire type it mirrors. */
interface Pairs {
    Action: [ext.Action, wire.Action];
    Depth: [ext.Depth, wire.Depth];
    Severity: [ext.Severity, wire.Severity];
    ReviewScope: [ext.ReviewScope, wire.ReviewScope];
    Category: [ext.Category, wire.Category];
    FileAction: [ext.FileAction, wire.FileAction];
    Outcome: [ext.Outcome, wire.Outcome];
    OutputKind: [ext.OutputKind, wire.OutputKind];
    ActionParams: [ext.ActionParams, wire.ActionParams];
    ActionResult: [ext.ActionResult, wire.ActionResult];
    ChangedFile: [ext.ChangedFile, wire.ChangedFile];
    RunMetadata: [ext.RunMetadata, wire.RunMetadata];
    Finding: [ext.Finding, wire.Finding];
    FindingFix: [ext.FindingFix, wire.FindingFix];
    RelatedLocation: [ext.RelatedLocation, wire.RelatedLocation];
    FindingRef: [ext.FindingRef, wire.FindingRef];
    ChangeRef: [ext.ChangeRef, wire.ChangeRef];
    RunStarted: [ext.RunStarted, wire.RunStarted];
    CancelArgs: [ext.CancelArgs, wire.CancelParams];
    UsageParams: [ext.UsageParams, wire.UsageParams];
    UsageCounts: [ext.UsageCounts, wire.UsageCounts];
    RunUsage: [ext.RunUsage, wire.RunUsage];
    LastRun: [ext.LastRun, wire.LastRun];
    WorkspaceUsage: [ext.WorkspaceUsage, wire.WorkspaceUsage];
    UsageReport: [ext.UsageReport, wire.UsageReport];
    SessionsParams: [ext.SessionsParams, wire.SessionsParams];
    SessionInfo: [ext.SessionInfo, wire.SessionInfo];
    SessionsResult: [ext.SessionsResult, wire.SessionsResult];
    RunInfo: [ext.RunInfo, wire.RunInfo];
    EstimateResult: [ext.EstimateResult, wire.EstimateResult];
    OutputParams: [ext.OutputParams, wire.OutputParams];
    Methods: [Mutable<typeof ext.Method>, wire.Methods];
}

/** A `const` object's type without `readonly`, as the generated interfaces have it. */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

type Differing = { [K in keyof Pairs]: Equal<Pairs[K][0], Pairs[K][1]> extends true ? never : K }[keyof Pairs];

/** A type error here names each hand-written type that differs from the Rust one. */
export const differing: [Differing] extends [never] ? 'none' : `${Differing} differs` = 'none';
