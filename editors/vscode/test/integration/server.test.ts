// End to end: the real claude-lsp, the real `claude` CLI and the fake Anthropic API, spoken to
// over vscode-jsonrpc with VS Code's client capabilities, as the extension does.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, afterEach, before, describe, it } from 'node:test';

import { CancellationTokenSource, ResponseError } from 'vscode-jsonrpc/node';
import {
    CodeActionRequest,
    DiagnosticSeverity,
    LSPErrorCodes,
    type PublishDiagnosticsParams,
    type WorkspaceEdit,
} from 'vscode-languageserver-protocol';

import {
    Command,
    analyze,
    estimate,
    generate,
    refactor,
    runs,
    type ActionResult,
    type OutputParams,
    type UsageReport,
} from '../../src/lsp_ext';
import { estimateDetail } from '../../src/format';
import { previewWorkspaceEdit } from '../../src/preview';
import { OPTION_STEPS, optionFields, runParams } from '../../src/run_options';
import {
    FakeApi,
    NAME_NOT_TRIMMED,
    ServerSession,
    Workspace,
    cliPath,
    editScript,
    waitFor,
    type ProgressValue,
} from './harness';

const TEST_TIMEOUT_MS = 180_000;
/** How much of the server's log a failure shows. */
const STDERR_TAIL = 6000;

// "👋" is two UTF-16 code units and "é" one: `.trim()` goes in at UTF-16 character 27 of line 1
// (26 in code points, 30 in UTF-8 bytes), so a wrong position encoding shows.
const GREET = 'export function greet(name: string): string {\n    return `héllo 👋 ${name}`; // greet\n}\n';
const UNSAVED = '// unsaved line only the editor has\n';

function range(startLine: number, startChar: number, endLine: number, endChar: number) {
    return { start: { line: startLine, character: startChar }, end: { line: endLine, character: endChar } };
}

/** begin → report… → end, with the reports naming what the agent did. */
function assertProgress(values: ProgressValue[], title: string, reports: string[]): string {
    assert.equal(values[0]?.kind, 'begin', JSON.stringify(values));
    assert.equal((values[0] as { title?: string }).title, title);
    assert.equal(values.at(-1)?.kind, 'end', JSON.stringify(values));
    assert.ok(values.slice(1, -1).every((value) => value.kind === 'report'), JSON.stringify(values));
    const messages = values.map((value) => value.message).filter((message) => message !== undefined);
    for (const report of reports) {
        assert.ok(messages.includes(report), `no report ${JSON.stringify(report)} in ${JSON.stringify(messages)}`);
    }
    return values.at(-1)?.message ?? '';
}

interface Running {
    workspace: Workspace;
    api: FakeApi;
    server: ServerSession;
}

describe('claude-lsp as VS Code sees it', () => {
    let running: Running | undefined;

    before(() => {
        // Fail at once (not skip) when the real CLI is missing.
        cliPath();
    });

    /** What to clean up after each test, as far as it got. */
    let workspace: Workspace | undefined;
    let api: FakeApi | undefined;

    async function start(files: Record<string, string>, script: unknown): Promise<Running> {
        workspace = new Workspace(files);
        api = await FakeApi.start(script, workspace.base);
        const server = await ServerSession.start(workspace, api);
        running = { workspace, api, server };
        return running;
    }

    async function stop(): Promise<void> {
        const server = running?.server;
        running = undefined;
        await server?.stop();
        await api?.stop();
        api = undefined;
        await workspace?.remove();
        workspace = undefined;
    }

    afterEach(stop);
    after(stop);

    /** `it`, with the server's log attached to a failure. */
    function test(name: string, body: () => Promise<void>): void {
        it(name, { timeout: TEST_TIMEOUT_MS }, async () => {
            try {
                await body();
            } catch (error) {
                if (error instanceof Error && running !== undefined) {
                    error.message += `\n--- claude-lsp stderr (end) ---\n${running.server.stderr.slice(-STDERR_TAIL)}`;
                }
                throw error;
            }
        });
    }

    test('initializes with what vscode-languageclient accepts', async () => {
        const { server } = await start({ 'src/greet.ts': GREET }, { turns: [{ text: 'unused' }] });
        const capabilities = server.initializeResult.capabilities;
        // vscode-languageclient 9 refuses any position encoding but UTF-16.
        assert.ok(
            capabilities.positionEncoding === undefined || capabilities.positionEncoding === 'utf-16',
            `positionEncoding ${String(capabilities.positionEncoding)}`,
        );
        const sync = capabilities.textDocumentSync;
        assert.equal(typeof sync === 'object' ? sync.change : sync, 2, 'incremental sync');
        const commands = capabilities.executeCommandProvider?.commands ?? [];
        for (const command of Object.values(Command)) {
            assert.ok(commands.includes(command), `${command} missing from ${JSON.stringify(commands)}`);
        }
        assert.ok(capabilities.codeActionProvider, 'code actions');
        // The extension leaves file watching to the server, which registers it with VS Code.
        const registration = await waitFor('the watched-files registration', 60_000, () =>
            server.serverRequests.find((request) => request.method === 'client/registerCapability'),
        );
        assert.deepEqual(registration.params, {
            registrations: [
                {
                    id: 'claude-lsp/watched-files',
                    method: 'workspace/didChangeWatchedFiles',
                    registerOptions: { watchers: [{ globPattern: '**/*', kind: 6 }] },
                },
            ],
        });
    });

    test("the options quick pick's estimates: one per review scope from the server, each stated as an estimate, none a run", async () => {
        const { workspace, server, api } = await start(
            { 'src/greet.ts': GREET, 'lib/other.ts': GREET },
            { turns: [{ text: 'unused' }] },
        );
        // An unsaved buffer of 24,000 characters (~6,000 tokens): the file scope shows it whole,
        // a folder or workspace scope lists file names for the agent to read.
        const buffer = GREET + '// padding line\n'.repeat(1500);
        writeFileSync(workspace.path('src/greet.ts'), GREET + UNSAVED);
        const uri = workspace.uri('src/greet.ts');
        await server.connection.sendNotification('textDocument/didOpen', {
            textDocument: { uri, languageId: 'typescript', version: 1, text: buffer },
        });
        const scopeStep = OPTION_STEPS.review[0];
        assert.equal(scopeStep?.key, 'scope');
        // What commands.ts asks for each choice of the first step, and the detail it shows.
        const tokens = new Map<string, number>();
        for (const choice of scopeStep.choices) {
            const result = await server.connection.sendRequest(estimate, {
                ...runParams('review', { textDocument: { uri } }, optionFields([choice], undefined)),
                action: 'review',
            });
            assert.match(
                estimateDetail(result),
                /^≈ \$\d+\.\d{4}–\$\d+\.\d{4} · ~\d+(\.\d)?k? input tokens \(estimate\)$/,
                choice.label,
            );
            assert.ok(result.costUsdLow <= result.costUsdHigh, JSON.stringify(result));
            tokens.set(choice.fields.scope ?? 'file', result.inputTokens);
        }
        // Each choice is priced for its own run: the file with its unsaved text, the folder's one
        // file name, the workspace's two.
        const tokensOf = (scope: string): number => tokens.get(scope) ?? 0;
        assert.ok(tokensOf('file') > tokensOf('folder') + 5000, JSON.stringify([...tokens]));
        assert.ok(tokensOf('workspace') > tokensOf('folder'), JSON.stringify([...tokens]));
        assert.ok(tokens.has('changes'), JSON.stringify([...tokens]));
        assert.deepEqual(api.requests(), [], 'an estimate calls no API');
    });

    test('claude/refactor answers the exact WorkspaceEdit, reports progress, and writes nothing', async () => {
        const { workspace, server } = await start(
            { 'src/greet.ts': GREET },
            editScript('src/greet.ts', '${name}`', '${name.trim()}`', 'Trimmed the name.'),
        );
        const uri = workspace.uri('src/greet.ts');
        const buffer = GREET + UNSAVED;
        await server.connection.sendNotification('textDocument/didOpen', {
            textDocument: { uri, languageId: 'typescript', version: 5, text: buffer },
        });
        const token = 'vscode-claude/refactor';
        server.watchProgress(token);

        const result: ActionResult = await server.connection.sendRequest(refactor, {
            textDocument: { uri },
            range: range(0, 0, 2, 1),
            instruction: 'trim the name',
            workDoneToken: token,
        });

        const expected: WorkspaceEdit = {
            documentChanges: [
                { textDocument: { uri, version: 5 }, edits: [{ range: range(1, 27, 1, 27), newText: '.trim()' }] },
            ],
        };
        assert.deepEqual(result.edit, expected);
        assert.deepEqual(result.files, [{ uri, action: 'modified' }]);
        assert.equal(result.text, 'Trimmed the name.');
        assert.equal(result.metadata.numTurns, 3);
        assert.ok(result.sessionId !== '', 'a session id');
        assert.equal(workspace.read('src/greet.ts'), GREET, 'the server must never write the user\u2019s files');

        // What the extension's review would show and apply.
        const previews = previewWorkspaceEdit(result.edit ?? {}, new Map([[uri, buffer]]));
        assert.deepEqual(
            previews.map(({ uri: file, kind, after: text }) => ({ file, kind, text })),
            [{ file: uri, kind: 'modified', text: buffer.replace('${name}`', '${name.trim()}`') }],
        );

        const end = assertProgress(await server.progressUntilEnd(token), 'Claude: refactor', [
            'Reading src/greet.ts',
            'Editing src/greet.ts',
        ]);
        assert.match(end, /^1 edit in 1 file · 3 turns · /);
        const outputs = server.notificationsOf('claude/output') as OutputParams[];
        assert.ok(
            outputs.some((output) => output.kind === 'toolUse' && output.tool === 'Edit'),
            JSON.stringify(outputs),
        );
        // The status bar's input: the run's usage, sent once it is recorded.
        const reports = await waitFor('claude/usageChanged after the run', 10_000, () => {
            const sent = server.notificationsOf('claude/usageChanged') as UsageReport[];
            return sent.length > 0 ? sent : undefined;
        });
        assert.equal(reports.at(-1)?.lastRun?.sessionId, result.sessionId);
        assert.deepEqual(
            server.serverRequests.filter((request) => request.method === 'workspace/applyEdit'),
            [],
            'a request never applies anything',
        );
    });

    test('claude/generate of a new file answers CreateFile plus its content', async () => {
        const content = 'export const answer = 42;\n';
        const { workspace, server } = await start(
            { 'src/greet.ts': GREET },
            {
                turns: [
                    { toolUse: { name: 'Write', input: { file_path: '{{cwd}}/src/answer.ts', content } } },
                    { text: 'Created src/answer.ts.' },
                ],
            },
        );
        const uri = workspace.uri('src/greet.ts');
        const created = workspace.uri('src/answer.ts');
        const result: ActionResult = await server.connection.sendRequest(generate, {
            textDocument: { uri },
            instruction: 'export the answer from a new file',
        });
        assert.deepEqual(result.files, [{ uri: created, action: 'created' }]);
        const previews = previewWorkspaceEdit(result.edit ?? {}, new Map([[uri, GREET]]));
        assert.deepEqual(
            previews.map(({ uri: file, kind, before: old, after: text }) => ({ file, kind, old, text })),
            [{ file: created, kind: 'created', old: undefined, text: content }],
        );
    });

    test('claude/analyze answers the summary and its findings, placed in the file, and no edit', async () => {
        const report = {
            findings: [
                {
                    path: 'src/greet.ts',
                    startLine: 2,
                    endLine: 2,
                    severity: 'info',
                    category: 'correctness',
                    title: 'The name is used as given',
                    explanation: 'Spaces around it end up in the greeting.',
                    snippet: '${name}',
                },
            ],
            summary: 'greet builds a greeting from the name.',
        };
        const answer = `\`\`\`json\n${JSON.stringify(report, null, 2)}\n\`\`\`\n`;
        const { workspace, server } = await start({ 'src/greet.ts': GREET }, { turns: [{ text: answer }] });
        const uri = workspace.uri('src/greet.ts');
        const token = 'vscode-claude/analyze';
        server.watchProgress(token);

        const result: ActionResult = await server.connection.sendRequest(analyze, {
            textDocument: { uri },
            workDoneToken: token,
        });

        assert.equal(result.text, 'greet builds a greeting from the name.');
        assert.equal(result.edit, undefined);
        assert.deepEqual(result.files, []);
        // Placed by the code it quotes, in UTF-16 columns: "${name}" spans 21..28 after "👋 ".
        assert.deepEqual(
            result.findings?.map(({ uri: file, range: place, severity, category, title }) => ({
                file,
                place,
                severity,
                category,
                title,
            })),
            [
                {
                    file: uri,
                    place: range(1, 21, 1, 28),
                    severity: 'info',
                    category: 'correctness',
                    title: 'The name is used as given',
                },
            ],
        );
        assertProgress(await server.progressUntilEnd(token), 'Claude: analyze', []);
        const inFlight = await server.connection.sendRequest(runs, {});
        assert.deepEqual(inFlight.runs, []);
    });

    test('the claude.review command answers a run id, ends its progress, and publishes findings with quick fixes', async () => {
        const report = {
            findings: [{ ...NAME_NOT_TRIMMED, fix: { oldText: '${name}', newText: '${name.trim()}' } }],
            summary: 'One problem.',
        };
        const answer = `One problem.\n\n\`\`\`json\n${JSON.stringify(report, null, 2)}\n\`\`\`\n`;
        const { workspace, server } = await start({ 'src/greet.ts': GREET }, { turns: [{ text: answer }] });
        const uri = workspace.uri('src/greet.ts');
        await server.connection.sendNotification('textDocument/didOpen', {
            textDocument: { uri, languageId: 'typescript', version: 1, text: GREET },
        });
        const token = 'vscode-claude/review';
        server.watchProgress(token);

        // What the extension's "Claude: Review" sends.
        const started = await server.connection.sendRequest<{ runId?: unknown }>('workspace/executeCommand', {
            command: Command.review,
            arguments: [{ textDocument: { uri }, scope: 'file', workDoneToken: token }],
        });
        assert.equal(typeof started.runId, 'string', JSON.stringify(started));

        assertProgress(await server.progressUntilEnd(token), 'Claude: review', []);
        const published = await waitFor<PublishDiagnosticsParams>('findings published for greet.ts', 30_000, () =>
            (server.notificationsOf('textDocument/publishDiagnostics') as PublishDiagnosticsParams[]).find(
                (params) => params.uri === uri && params.diagnostics.length > 0,
            ),
        );
        const [diagnostic] = published.diagnostics;
        assert.ok(diagnostic);
        assert.equal(diagnostic.source, 'claude');
        assert.equal(diagnostic.severity, DiagnosticSeverity.Warning);
        assert.equal(diagnostic.range.start.line, 1);
        assert.match(diagnostic.message, /not trimmed/);
        const inFlight = await server.connection.sendRequest(runs, {});
        assert.ok(!inFlight.runs.some((run) => run.runId === started.runId), 'the run is over');

        // The finding's quick fixes come from the server, which is why review is a server command.
        const actions = await server.connection.sendRequest(CodeActionRequest.type, {
            textDocument: { uri },
            range: diagnostic.range,
            context: { diagnostics: [diagnostic], triggerKind: 1 },
        });
        const titles = (actions ?? []).map((action) => action.title);
        assert.ok(
            titles.includes('Claude: apply fix — The name is not trimmed'),
            `no apply-fix action in ${JSON.stringify(titles)}`,
        );
    });

    test('$/cancelRequest stops a run with RequestCancelled and applies nothing', async () => {
        const { workspace, api, server } = await start({ 'src/greet.ts': GREET }, { turns: [{ hang: true }] });
        const uri = workspace.uri('src/greet.ts');
        const token = 'vscode-claude/cancel';
        server.watchProgress(token);
        const cancel = new CancellationTokenSource();

        const answer = server.connection.sendRequest(
            refactor,
            { textDocument: { uri }, instruction: 'anything', workDoneToken: token },
            cancel.token,
        );
        await api.waitForRequests(1);
        cancel.cancel();

        await assert.rejects(answer, (error: unknown) => {
            assert.ok(error instanceof ResponseError, String(error));
            assert.equal(error.code, LSPErrorCodes.RequestCancelled);
            return true;
        });
        const progress = await server.progressUntilEnd(token);
        assert.match(progress.at(-1)?.message ?? '', /nothing was applied/i);
        assert.equal(workspace.read('src/greet.ts'), GREET);
        assert.deepEqual(
            server.serverRequests.filter((request) => request.method === 'workspace/applyEdit'),
            [],
        );
    });
});
