// Text shown to the user: the output channel's lines, error messages, usage. Pure (no `vscode`).

import {
    isErrorData,
    type ActionResult,
    type EstimateResult,
    type Finding,
    type OutputKind,
    type OutputParams,
    type UsageCounts,
    type UsageReport,
} from './lsp_ext';

/** Tool results can be whole files: the output channel shows this many lines of each. */
export const TOOL_RESULT_LINES = 20;

/**
 * The `claude/output` stream as output-channel text. Text and thinking arrive in stream chunks:
 * they are joined into whole lines, and a line is ended only by its own newline or when another
 * kind of item (or another run) comes.
 */
export class OutputFormatter {
    /** The streamed item whose line is still open. */
    private open: { runId: string; kind: OutputKind } | undefined;

    format(params: OutputParams): string {
        const streamed = params.kind === 'text' || params.kind === 'thinking';
        const continues = streamed && this.open?.runId === params.runId && this.open.kind === params.kind;
        const close = this.open !== undefined && !continues ? '\n' : '';
        if (!streamed) {
            this.open = undefined;
            return close + formatItem(params);
        }
        const prefix = params.kind === 'thinking' ? '  … ' : '';
        let text = params.text;
        if (!continues) {
            text = prefix + text;
        }
        if (prefix !== '') {
            text = text.replace(/\n(?=.)/gs, `\n${prefix}`);
        }
        this.open = text.endsWith('\n') ? undefined : { runId: params.runId, kind: params.kind };
        return close + text;
    }
}

/** A whole (not streamed) item, ending with a newline. */
function formatItem(params: OutputParams): string {
    const text = params.text.replace(/\s+$/, '');
    switch (params.kind) {
        case 'toolUse':
            return `→ ${params.tool ?? 'tool'}${text === '' ? '' : `: ${text}`}\n`;
        case 'toolResult':
            return indent(truncateLines(text, TOOL_RESULT_LINES), '  ← ');
        case 'result':
            return `■ ${text}\n`;
        case 'error':
            return `✗ ${text}\n`;
        default:
            return `${text}\n`;
    }
}

function indent(text: string, prefix: string): string {
    return text
        .split('\n')
        .map((line) => `${prefix}${line}`)
        .join('\n')
        .concat('\n');
}

function truncateLines(text: string, limit: number): string {
    const lines = text.split('\n');
    if (lines.length <= limit) {
        return text;
    }
    const hidden = lines.length - limit;
    return [...lines.slice(0, limit), `… (${hidden} more line${hidden === 1 ? '' : 's'})`].join('\n');
}

/** An error from the server (or anything thrown) as one message, with the server's hint. */
export function errorMessage(error: unknown): string {
    if (typeof error !== 'object' || error === null || !('message' in error)) {
        return String(error);
    }
    const message = String(error.message);
    const data = 'data' in error ? error.data : undefined;
    if (isErrorData(data) && data.hint !== '') {
        return `${message} — ${data.hint}`;
    }
    return message;
}

/** Whether trying the same action again may succeed (the server says so in `data.retryable`). */
export function isRetryable(error: unknown): boolean {
    if (typeof error !== 'object' || error === null || !('data' in error)) {
        return false;
    }
    return isErrorData(error.data) && error.data.retryable;
}

/** `$0.0123`: cents are too coarse for one run, more digits are noise. */
export function formatCost(usd: number): string {
    if (!Number.isFinite(usd)) {
        return '$?';
    }
    return usd >= 1 ? `$${usd.toFixed(2)}` : `$${usd.toFixed(4)}`;
}

/** `12.3k`: token counts at a glance. */
export function formatCount(count: number): string {
    if (count < 1000) {
        return String(count);
    }
    if (count < 1_000_000) {
        return `${(count / 1000).toFixed(1)}k`;
    }
    return `${(count / 1_000_000).toFixed(1)}M`;
}

/** A run's `claude/estimate` as a quick pick shows it, said to be an estimate. */
export function estimateDetail(estimate: EstimateResult): string {
    return (
        `≈ ${formatCost(estimate.costUsdLow)}–${formatCost(estimate.costUsdHigh)}` +
        ` · ~${formatCount(estimate.inputTokens)} input tokens (estimate)`
    );
}

/** One line about a finished run: turns, tokens, cost, time. */
export function runSummary(result: ActionResult): string {
    const meta = result.metadata;
    const parts = [
        `${meta.numTurns} turn${meta.numTurns === 1 ? '' : 's'}`,
        `${formatCount(meta.inputTokens + meta.outputTokens)} tokens`,
        formatCost(meta.costUsd),
        `${(meta.durationMs / 1000).toFixed(1)} s`,
    ];
    return parts.join(' · ');
}

/** `$0.0123 · 2 runs · 5 turns · 1.2k tokens`. */
export function usageCountsLine(counts: UsageCounts): string {
    return [
        formatCost(counts.costUsd),
        `${counts.runs} run${counts.runs === 1 ? '' : 's'}`,
        `${counts.turns} turn${counts.turns === 1 ? '' : 's'}`,
        `${formatCount(counts.inputTokens + counts.outputTokens)} tokens`,
    ].join(' · ');
}

/** What the runs of this editor window used: the sum of each notification's `lastRun`. */
export class WindowUsage {
    private costUsd = 0;
    private runs = 0;

    /** Adds the run a `claude/usageChanged` notification reports (a report without one adds nothing). */
    add(report: UsageReport): void {
        if (report.lastRun !== undefined) {
            this.costUsd += report.lastRun.costUsd;
            this.runs += 1;
        }
    }

    /** The status-bar text. */
    statusText(): string {
        return `Claude ${formatCost(this.costUsd)}`;
    }

    summary(): string {
        return `${formatCost(this.costUsd)} in ${this.runs} run${this.runs === 1 ? '' : 's'}`;
    }
}

/** A usage report as lines for the user, the window's own usage first when known. */
export function usageReportLines(report: UsageReport, window?: WindowUsage): string[] {
    const lines: string[] = [];
    if (window !== undefined) {
        lines.push(`This window: ${window.summary()}`);
    }
    lines.push(`Today (${report.day}, UTC): ${usageCountsLine(report.today)}`);
    if (report.dailyBudgetUsd !== undefined && report.dailyBudgetUsd > 0) {
        const used = Math.round((report.today.costUsd / report.dailyBudgetUsd) * 100);
        lines.push(`Daily budget: ${formatCost(report.dailyBudgetUsd)}, ${used}% used`);
    }
    lines.push(`All time: ${usageCountsLine(report.total)}`);
    const models = Object.entries(report.byModel).sort(([, a], [, b]) => b.costUsd - a.costUsd);
    for (const [model, counts] of models) {
        lines.push(`  ${model}: ${usageCountsLine(counts)}`);
    }
    return lines;
}

const SEVERITY_ORDER = ['error', 'warning', 'info', 'hint'];

/**
 * An answer as a markdown document: the agent's text, then its findings (most severe first),
 * each linked to its place. `displayPath` turns a URI into what the user reads.
 */
export function answerMarkdown(
    title: string,
    text: string,
    findings: readonly Finding[] | undefined,
    displayPath: (uri: string) => string,
): string {
    const parts = [`# ${title}`, text.trim()];
    if (findings !== undefined && findings.length > 0) {
        const sorted = [...findings].sort(
            (a, b) => SEVERITY_ORDER.indexOf(a.severity) - SEVERITY_ORDER.indexOf(b.severity),
        );
        parts.push(`## Findings (${findings.length})`);
        for (const finding of sorted) {
            const line = finding.range.start.line + 1;
            const place = `[${displayPath(finding.uri)}:${line}](${finding.uri}#L${line})`;
            const lines = [`- **${finding.severity}** · ${finding.category} · ${place} — **${finding.title}**`];
            lines.push(`  ${finding.explanation.trim().replace(/\n/g, '\n  ')}`);
            if (finding.suggestion !== undefined && finding.suggestion.trim() !== '') {
                lines.push(`  *Suggestion:* ${finding.suggestion.trim().replace(/\n/g, '\n  ')}`);
            }
            parts.push(lines.join('\n'));
        }
    }
    return `${parts.filter((part) => part !== '').join('\n\n')}\n`;
}
