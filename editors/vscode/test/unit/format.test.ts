import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ResponseError } from 'vscode-jsonrpc';

import type { Finding, OutputParams, UsageCounts, UsageReport } from '../../src/lsp_ext';
import {
    TOOL_RESULT_LINES,
    answerMarkdown,
    errorMessage,
    estimateDetail,
    formatCost,
    formatCount,
    OutputFormatter,
    isRetryable,
    WindowUsage,
    runSummary,
    usageReportLines,
} from '../../src/format';

describe('OutputFormatter', () => {
    const format = (...items: OutputParams[]): string => {
        const formatter = new OutputFormatter();
        return items.map((item) => formatter.format(item)).join('');
    };
    const text = (chunk: string, runId = 'r'): OutputParams => ({ runId, kind: 'text', text: chunk });

    it('joins streamed text into whole lines', () => {
        assert.equal(
            format(text('Renamed greet '), text('to '), text('hello.'), { runId: 'r', kind: 'result', text: '1 turn' }),
            'Renamed greet to hello.\n■ 1 turn\n',
        );
        assert.equal(format(text('one\ntw'), text('o\n'), text('three')), 'one\ntwo\nthree');
    });

    it('ends an open line when another run or another kind comes', () => {
        assert.equal(format(text('a', 'r1'), text('b', 'r2')), 'a\nb');
        assert.equal(
            format({ runId: 'r', kind: 'thinking', text: 'hmm\nwe' }, { runId: 'r', kind: 'thinking', text: 'll' }, text('Done.')),
            '  … hmm\n  … well\nDone.',
        );
    });

    it('shows tools and the result on their own lines', () => {
        assert.equal(
            format(text('Reading'), { runId: 'r', kind: 'toolUse', tool: 'Read', text: 'src/lib.rs' }),
            'Reading\n→ Read: src/lib.rs\n',
        );
        assert.equal(format({ runId: 'r', kind: 'toolUse', text: '' }), '→ tool\n');
        assert.equal(format({ runId: 'r', kind: 'error', text: 'the CLI crashed\n' }), '✗ the CLI crashed\n');
    });

    it('cuts long tool results', () => {
        const lines = Array.from({ length: TOOL_RESULT_LINES + 5 }, (_, index) => `line ${index}`);
        const shown = format({ runId: 'r', kind: 'toolResult', text: lines.join('\n') }).split('\n');
        assert.equal(shown.length, TOOL_RESULT_LINES + 2);
        assert.equal(shown[0], '  ← line 0');
        assert.equal(shown[TOOL_RESULT_LINES], '  ← … (5 more lines)');
    });
});

describe('errors', () => {
    it('adds the server\u2019s hint and tells whether to retry', () => {
        const limited = new ResponseError(-32004, 'slow down', { kind: 'rate_limited', retryable: true, hint: 'wait a minute' });
        assert.equal(errorMessage(limited), 'slow down — wait a minute');
        assert.equal(isRetryable(limited), true);
        const plain = new ResponseError(-32603, 'boom');
        assert.equal(errorMessage(plain), 'boom');
        assert.equal(isRetryable(plain), false);
        assert.equal(errorMessage('text'), 'text');
        assert.equal(isRetryable(new Error('x')), false);
    });
});

describe('numbers', () => {
    it('formats cost and counts compactly', () => {
        assert.equal(formatCost(0.01234), '$0.0123');
        assert.equal(formatCost(12.5), '$12.50');
        assert.equal(formatCost(Number.NaN), '$?');
        assert.equal(formatCount(999), '999');
        assert.equal(formatCount(1234), '1.2k');
        assert.equal(formatCount(2_500_000), '2.5M');
    });

    it("states a run's estimate as one, a cost range and the input tokens", () => {
        const detail = estimateDetail({
            inputTokens: 3140,
            pricedAs: 'Sonnet',
            costUsdLow: 0.01242,
            costUsdHigh: 0.0402,
            message: 'Estimate: ~3.1k input tokens, $0.0124–$0.0402 (Sonnet prices)',
        });
        assert.equal(detail, '≈ $0.0124–$0.0402 · ~3.1k input tokens (estimate)');
    });

    it('summarises a run', () => {
        assert.equal(
            runSummary({
                sessionId: 's',
                text: '',
                files: [],
                metadata: {
                    durationMs: 2500,
                    numTurns: 3,
                    inputTokens: 1000,
                    outputTokens: 234,
                    cacheReadTokens: 0,
                    costUsd: 0.0123,
                },
            }),
            '3 turns · 1.2k tokens · $0.0123 · 2.5 s',
        );
    });
});

describe('answerMarkdown', () => {
    const finding = (severity: Finding['severity'], line: number, title: string, extra: Partial<Finding> = {}): Finding => ({
        id: `f${line}`,
        uri: 'file:///ws/src/lib.rs',
        range: { start: { line, character: 0 }, end: { line, character: 4 } },
        severity,
        category: 'bug',
        title,
        explanation: 'Why it matters.\nSecond line.',
        ...extra,
    });
    const relative = (uri: string): string => uri.replace('file:///ws/', '');

    it('is the title and the text when there are no findings', () => {
        assert.equal(answerMarkdown('Claude: analyze', '  The answer.\n', undefined, relative), '# Claude: analyze\n\nThe answer.\n');
        assert.equal(answerMarkdown('Claude: analyze', 'The answer.', [], relative), '# Claude: analyze\n\nThe answer.\n');
    });

    it('lists findings most severe first, linked to their line', () => {
        const markdown = answerMarkdown(
            'Claude: analyze',
            'Two problems.',
            [finding('hint', 9, 'Naming'), finding('error', 2, 'Overflow', { suggestion: 'Use checked_add.' })],
            relative,
        );
        assert.equal(
            markdown,
            [
                '# Claude: analyze',
                '',
                'Two problems.',
                '',
                '## Findings (2)',
                '',
                '- **error** · bug · [src/lib.rs:3](file:///ws/src/lib.rs#L3) — **Overflow**',
                '  Why it matters.',
                '  Second line.',
                '  *Suggestion:* Use checked_add.',
                '',
                '- **hint** · bug · [src/lib.rs:10](file:///ws/src/lib.rs#L10) — **Naming**',
                '  Why it matters.',
                '  Second line.',
                '',
            ].join('\n'),
        );
    });
});

describe('usage', () => {
    const counts = (costUsd: number, runs: number): UsageCounts => ({
        runs,
        turns: runs * 3,
        inputTokens: 1000 * runs,
        outputTokens: 200 * runs,
        cacheReadTokens: 0,
        cacheCreationTokens: 0,
        costUsd,
        durationMs: 1000,
    });
    const report = (lastRunCost?: number): UsageReport => ({
        day: '2026-11-21',
        burnRateUsdPerHour: 0.25,
        projectedTodayUsd: 4.5,
        today: counts(0.5, 2),
        total: counts(12.5, 40),
        byDay: {},
        byModel: { 'claude-haiku': counts(0.5, 10), 'claude-opus': counts(12, 30) },
        workspaces: [],
        dailyBudgetUsd: 2,
        ...(lastRunCost === undefined ? {} : { lastRun: { sessionId: 's', ...counts(lastRunCost, 1) } }),
    });

    it('adds up what this window\u2019s runs cost, from each notification\u2019s last run', () => {
        const window = new WindowUsage();
        assert.equal(window.statusText(), 'Claude $0.0000');
        window.add(report(0.25));
        window.add(report());
        window.add(report(1));
        assert.equal(window.statusText(), 'Claude $1.25');
        assert.equal(window.summary(), '$1.25 in 2 runs');
    });

    it('lists the window, today against the budget, all time, and models by cost', () => {
        const window = new WindowUsage();
        window.add(report(0.01));
        assert.deepEqual(usageReportLines(report(), window), [
            'This window: $0.0100 in 1 run',
            'Today (2026-11-21, UTC): $0.5000 · 2 runs · 6 turns · 2.4k tokens',
            'Daily budget: $2.00, 25% used',
            'All time: $12.50 · 40 runs · 120 turns · 48.0k tokens',
            '  claude-opus: $12.00 · 30 runs · 90 turns · 36.0k tokens',
            '  claude-haiku: $0.5000 · 10 runs · 30 turns · 12.0k tokens',
        ]);
    });
});
