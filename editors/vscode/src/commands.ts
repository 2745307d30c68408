// The extension's commands. Generate, analyze and refactor go through the custom requests
// (`claude/*`), so the client decides what is applied: edits are reviewed file by file first,
// answers open in a markdown preview. Review goes through the server's `claude.review` command:
// its findings are server state (published as diagnostics, with "apply fix" / "dismiss" quick
// fixes that only the server can resolve), so the server must own them.

import { randomUUID } from 'node:crypto';
import * as vscode from 'vscode';
import {
    ExecuteCommandRequest,
    LSPErrorCodes,
    ResponseError,
    WorkDoneProgress,
    type ProgressToken,
} from 'vscode-languageclient';
import type { LanguageClient } from 'vscode-languageclient/node';

import { AnswerDocuments } from './answers';
import { EditReviewer } from './edit_review';
import {
    OPTION_STEPS,
    choiceOf,
    optionFields,
    orderedChoices,
    remembered,
    runParams,
    type OptionChoice,
    type OptionFields,
    type OptionsAction,
    type RememberedOptions,
    type Target,
} from './run_options';
import {
    type WindowUsage,
    answerMarkdown,
    errorMessage,
    estimateDetail,
    isRetryable,
    runSummary,
    usageReportLines,
} from './format';
import {
    Command,
    actionRequests,
    estimate,
    runs,
    sessions,
    usage,
    type Action,
    type ActionParams,
    type ActionResult,
    type CancelResult,
    type EstimateParams,
    type RunStarted,
    type SessionInfo,
} from './lsp_ext';

/** How often a background review checks that its run still exists, in case no `end` arrives. */
const RUN_POLL_MS = 5000;

/** The sessions this window started, newest first, so "Continue" can offer them. */
const MAX_RECENT_SESSIONS = 20;

type RequestAction = Exclude<Action, 'review'>;

/** Server commands whose runs the client makes itself, through the request of the same action. */
const interceptedCommands = new Map<string, RequestAction>([
    [Command.generate, 'generate'],
    [Command.analyze, 'analyze'],
    [Command.refactor, 'refactor'],
]);

interface RecentSession {
    sessionId: string;
    action: RequestAction;
    uri: string;
    label: string;
}

/** Thrown inside a run that the user (or `claude.cancel`) cancelled. */
class Cancelled extends Error {}

export class Commands implements vscode.Disposable {
    private readonly reviewer: EditReviewer;
    private readonly answers = new AnswerDocuments();
    private readonly recent: RecentSession[] = [];

    constructor(
        private readonly getClient: () => LanguageClient | undefined,
        private readonly output: vscode.OutputChannel,
        private readonly windowUsage: WindowUsage,
        /** Where the "… with Options" commands remember their last choices. */
        private readonly memory: vscode.Memento,
    ) {
        this.reviewer = new EditReviewer(() => this.requireClient());
    }

    dispose(): void {
        this.reviewer.dispose();
        this.answers.dispose();
    }

    /** The VS Code commands, by id. */
    register(): vscode.Disposable[] {
        const commands: Record<string, () => Promise<void>> = {
            'claude-lsp.generate': () => this.generate(),
            'claude-lsp.analyze': () => this.analyze(),
            'claude-lsp.refactor': () => this.refactor(),
            'claude-lsp.review': () => this.review({}),
            'claude-lsp.reviewChanges': () => this.review({ scope: 'changes' }),
            'claude-lsp.reviewWithOptions': () => this.withOptions('review'),
            'claude-lsp.analyzeWithOptions': () => this.withOptions('analyze'),
            'claude-lsp.continue': () => this.continueSession(),
            'claude-lsp.cancel': () => this.cancelAll(),
            'claude-lsp.showUsage': () => this.showUsage(),
            'claude-lsp.showOutput': () => {
                this.output.show(true);
                return Promise.resolve();
            },
        };
        return Object.entries(commands).map(([id, run]) =>
            vscode.commands.registerCommand(id, () => run().catch((error: unknown) => showError(id, error))),
        );
    }

    /**
     * Server commands the client runs itself: the action commands that code actions carry, so
     * their edits get the same review as the editor commands. Review stays with the server.
     */
    intercept(command: string, args: unknown[]): Promise<unknown> | undefined {
        const action = interceptedCommands.get(command);
        const params = args[0];
        if (action === undefined || !isActionParams(params)) {
            return undefined;
        }
        // Returns at once, as the server's command would; the run reports through progress.
        void this.runRequest(action, params).catch((error: unknown) => showError(`Claude: ${action}`, error));
        return Promise.resolve(null);
    }

    private requireClient(): LanguageClient {
        const client = this.getClient();
        if (client === undefined || !client.isRunning()) {
            throw new Error('the claude-lsp server is not running (see the "Claude Language Server" output for why).');
        }
        return client;
    }

    private async generate(): Promise<void> {
        const target = targetOfActiveEditor();
        const instruction = await askInstruction('What should Claude generate?', 'e.g. a function that parses ISO dates', true);
        if (instruction !== undefined) {
            await this.runRequest('generate', { ...target, instruction });
        }
    }

    private async refactor(): Promise<void> {
        const target = targetOfActiveEditor();
        const instruction = await askInstruction(
            target.range === undefined ? 'How should Claude refactor this file?' : 'How should Claude refactor the selection?',
            'e.g. extract the parsing into its own function',
            true,
        );
        if (instruction !== undefined) {
            await this.runRequest('refactor', { ...target, instruction });
        }
    }

    private async analyze(): Promise<void> {
        const target = targetOfActiveEditor();
        const question = await askInstruction(
            'What should Claude look at? (optional)',
            'Leave empty for a general analysis',
            false,
        );
        if (question !== undefined) {
            await this.runRequest('analyze', question === '' ? target : { ...target, instruction: question });
        }
    }

    /**
     * Analyze or review with the options asked one quick pick at a time (the last choices first,
     * each with what the run would likely cost), then the model; remembered per workspace.
     * Escape at any step cancels.
     */
    private async withOptions(action: OptionsAction): Promise<void> {
        const key = `claude-lsp.options.${action}`;
        const last = this.memory.get<RememberedOptions>(key);
        const steps = OPTION_STEPS[action];
        const target = targetOfActiveEditor();
        const picked: OptionChoice[] = [];
        for (const step of steps) {
            // Priced with the model typed last time: the model question comes after the picks.
            const estimateOf = (choice: OptionChoice): EstimateParams => ({
                ...runParams(action, target, optionFields([...picked, choice], last?.model)),
                action,
            });
            const item = await this.pickWithEstimates(`Claude: ${action} — ${step.title}`, orderedChoices(step, last), estimateOf);
            const choice = item === undefined ? undefined : choiceOf(step, item.label);
            if (choice === undefined) {
                return;
            }
            picked.push(choice);
        }
        const model = await vscode.window.showInputBox({
            title: `Claude: ${action} — which model?`,
            prompt: 'A model name or alias; leave empty for the claude.model setting',
            value: last?.model ?? '',
        });
        if (model === undefined) {
            return;
        }
        await this.memory.update(key, remembered(steps, picked, model));
        const fields = optionFields(picked, model);
        if (action === 'review') {
            await this.review(fields);
        } else {
            await this.runRequest('analyze', runParams(action, target, fields));
        }
    }

    /**
     * One step's quick pick. Each choice's detail shows the server's `claude/estimate` of the run
     * it leads to, as it arrives; an estimate that fails is logged and holds nothing up.
     */
    private pickWithEstimates(
        title: string,
        choices: OptionChoice[],
        estimateOf: (choice: OptionChoice) => EstimateParams,
    ): Promise<OptionChoice | undefined> {
        const pick = vscode.window.createQuickPick<vscode.QuickPickItem>();
        pick.title = title;
        let items: vscode.QuickPickItem[] = choices.map((choice) => ({ label: choice.label }));
        pick.items = items;
        let open = true;
        const client = this.getClient();
        choices.forEach((choice, index) => {
            if (!client?.isRunning()) {
                return;
            }
            client.sendRequest(estimate, estimateOf(choice)).then(
                (result) => {
                    if (!open) {
                        return;
                    }
                    // Replacing the items moves the highlight back to the first: keep the user's.
                    const active = pick.activeItems[0]?.label;
                    items = items.map((item, i) => (i === index ? { ...item, detail: estimateDetail(result) } : item));
                    pick.items = items;
                    const highlighted = items.filter((item) => item.label === active);
                    if (highlighted.length > 0) {
                        pick.activeItems = highlighted;
                    }
                },
                (error: unknown) => this.output.appendLine(`Claude: no estimate for "${choice.label}": ${errorMessage(error)}`),
            );
        });
        return new Promise((resolve) => {
            pick.onDidAccept(() => {
                const label = (pick.selectedItems[0] ?? pick.activeItems[0])?.label;
                resolve(choices.find((choice) => choice.label === label));
                pick.hide();
            });
            pick.onDidHide(() => {
                open = false;
                resolve(undefined);
                pick.dispose();
            });
            pick.show();
        });
    }

    /** Runs one of the request actions under a cancellable progress notification. */
    private async runRequest(action: RequestAction, base: ActionParams): Promise<void> {
        const client = this.requireClient();
        const title = `Claude: ${action}`;
        let ending: string | undefined;
        let result: ActionResult;
        try {
            result = await withServerProgress(client, title, async (token, cancel, end) => {
                const params: ActionParams = { ...base, workDoneToken: token };
                try {
                    return await client.sendRequest(actionRequests[action], params, cancel);
                } catch (error) {
                    if (cancel.isCancellationRequested || isCancellation(error)) {
                        throw new Cancelled();
                    }
                    throw error;
                } finally {
                    ending = await end.firstOr(undefined);
                }
            });
        } catch (error) {
            if (error instanceof Cancelled) {
                void vscode.window.showInformationMessage(`${title} cancelled; nothing was applied.`);
                return;
            }
            if (isRetryable(error)) {
                const choice = await vscode.window.showErrorMessage(`${title} failed: ${errorMessage(error)}`, 'Retry');
                if (choice === 'Retry') {
                    await this.runRequest(action, base);
                }
                return;
            }
            throw error;
        }
        this.remember(action, base, result);
        this.output.appendLine(`── ${title} · ${runSummary(result)}`);
        await this.present(action, result, ending ?? runSummary(result));
    }

    private async present(action: RequestAction, result: ActionResult, summary: string): Promise<void> {
        const title = `Claude: ${action}`;
        if (action === 'analyze') {
            await this.showAnswer(title, result);
            return;
        }
        if (result.edit === undefined) {
            const choice = await vscode.window.showInformationMessage(`${title}: no files changed.`, 'Show answer');
            if (choice === 'Show answer') {
                await this.showAnswer(title, result);
            }
            return;
        }
        const outcome = await this.reviewer.review(result.edit, title);
        const applied = outcome.applied.length;
        const rejected = outcome.rejected.length;
        const message =
            applied === 0
                ? `${title}: all changes rejected.`
                : `${title}: applied ${applied} file${applied === 1 ? '' : 's'}` +
                  `${rejected > 0 ? `, rejected ${rejected}` : ''} (${summary}).`;
        const choice = await vscode.window.showInformationMessage(message, 'Show answer');
        if (choice === 'Show answer') {
            await this.showAnswer(title, result);
        }
    }

    /**
     * Review through the server's command: the run goes on in the background, findings arrive
     * as diagnostics, the answer as a message or document. Done when the progress ends.
     */
    private async review(options: OptionFields): Promise<void> {
        const client = this.requireClient();
        const params = runParams('review', targetOfActiveEditor(), options);
        const title = options.scope === 'changes' ? 'Claude: review my changes' : 'Claude: review';
        const ending = await withServerProgress(client, title, async (token, cancel, end) => {
            const started = (await client.sendRequest(ExecuteCommandRequest.type, {
                command: Command.review,
                arguments: [{ ...params, workDoneToken: token }],
            })) as RunStarted | null;
            if (started?.runId === undefined) {
                throw new Error('the server did not start a review run.');
            }
            const stopOnCancel = cancel.onCancellationRequested(() => {
                void client.sendRequest(ExecuteCommandRequest.type, {
                    command: Command.cancel,
                    arguments: [{ runId: started.runId }],
                });
            });
            try {
                return await waitForRunEnd(client, started.runId, end);
            } finally {
                stopOnCancel.dispose();
            }
        });
        // The server delivers the outcome itself: the answer as a message or document, findings
        // in Problems, a cancellation or failure as a message. A toast of ours would be a second
        // one for the same review.
        this.output.appendLine(`── ${title} · ${ending ?? 'ended'}`);
    }

    private async showAnswer(title: string, result: ActionResult): Promise<void> {
        const markdown = answerMarkdown(title, result.text, result.findings, (uri) =>
            vscode.workspace.asRelativePath(vscode.Uri.parse(uri)),
        );
        await this.answers.show(title, markdown);
    }

    private remember(action: RequestAction, params: ActionParams, result: ActionResult): void {
        const existing = this.recent.findIndex((session) => session.sessionId === result.sessionId);
        if (existing >= 0) {
            this.recent.splice(existing, 1);
        }
        const file = vscode.workspace.asRelativePath(vscode.Uri.parse(params.textDocument.uri));
        const what = params.instruction === undefined ? '' : ` — ${params.instruction}`;
        this.recent.unshift({
            sessionId: result.sessionId,
            action,
            uri: params.textDocument.uri,
            label: `${action} ${file}${what}`,
        });
        this.recent.length = Math.min(this.recent.length, MAX_RECENT_SESSIONS);
    }

    /** Continue a conversation: this window's sessions first, then the server's. */
    private async continueSession(): Promise<void> {
        const client = this.requireClient();
        interface SessionItem extends vscode.QuickPickItem {
            sessionId: string;
            action?: RequestAction;
            uri?: string;
        }
        const items: SessionItem[] = this.recent.map((session) => ({
            label: session.label,
            description: session.sessionId,
            sessionId: session.sessionId,
            action: session.action,
            uri: session.uri,
        }));
        const known = new Set(items.map((item) => item.sessionId));
        for (const session of (await this.serverSessions(client)).filter((s) => !known.has(s.id))) {
            const file = vscode.workspace.asRelativePath(vscode.Uri.parse(session.uri));
            items.push({
                label: `${session.action} ${file}${session.instruction === undefined ? '' : ` — ${session.instruction}`}`,
                description: session.endedAt,
                detail: session.summary,
                sessionId: session.id,
                action: session.action === 'review' ? undefined : session.action,
                uri: session.uri,
            });
        }
        if (items.length === 0) {
            void vscode.window.showInformationMessage('Claude: no conversation to continue yet.');
            return;
        }
        const picked = await vscode.window.showQuickPick(items, { title: 'Claude: continue which conversation?' });
        if (picked === undefined) {
            return;
        }
        const instruction = await askInstruction('What next?', 'e.g. now add tests for it', true);
        if (instruction === undefined) {
            return;
        }
        const editor = vscode.window.activeTextEditor;
        const uri = picked.uri ?? editor?.document.uri.toString();
        if (picked.action !== undefined && uri !== undefined) {
            await this.runRequest(picked.action, { textDocument: { uri }, sessionId: picked.sessionId, instruction });
            return;
        }
        // A session of unknown kind (or a review): the server continues it and delivers itself.
        await client.sendRequest(ExecuteCommandRequest.type, {
            command: Command.continue,
            arguments: [
                { sessionId: picked.sessionId, instruction, ...(uri === undefined ? {} : { textDocument: { uri } }) },
            ],
        });
    }

    /** The server's sessions; none when it cannot list them (the window's own still work). */
    private async serverSessions(client: LanguageClient): Promise<SessionInfo[]> {
        try {
            return (await client.sendRequest(sessions, {})).sessions;
        } catch (error) {
            this.output.appendLine(`Claude: cannot list the server's sessions: ${errorMessage(error)}`);
            return [];
        }
    }

    private async cancelAll(): Promise<void> {
        const client = this.requireClient();
        const inFlight = await client.sendRequest(runs, {});
        if (inFlight.runs.length === 0) {
            void vscode.window.showInformationMessage('Claude: nothing is running.');
            return;
        }
        const result = (await client.sendRequest(ExecuteCommandRequest.type, {
            command: Command.cancel,
            arguments: [],
        })) as CancelResult | null;
        const count = result?.cancelled ?? 0;
        void vscode.window.showInformationMessage(`Claude: cancelled ${count} run${count === 1 ? '' : 's'}.`);
    }

    private async showUsage(): Promise<void> {
        const client = this.requireClient();
        const report = await client.sendRequest(usage, {});
        void vscode.window.showInformationMessage('Claude usage', {
            modal: true,
            detail: usageReportLines(report, this.windowUsage).join('\n'),
        });
    }
}

/** The `end` message of a run's progress, once it arrives. */
class ProgressEnd {
    private message: string | undefined;
    private ended = false;
    private readonly waiters: (() => void)[] = [];

    finish(message: string | undefined): void {
        this.message = message;
        this.ended = true;
        this.waiters.splice(0).forEach((wake) => wake());
    }

    /** Resolves with the end message when the run ended, or after `ms` (then `timedOut`). */
    async wait(ms: number): Promise<string | undefined | typeof timedOut> {
        if (this.ended) {
            return this.message;
        }
        return new Promise((resolve) => {
            const timer = setTimeout(() => resolve(timedOut), ms);
            this.waiters.push(() => {
                clearTimeout(timer);
                resolve(this.message);
            });
        });
    }

    /** The end message if the run has ended, else `fallback` (a request's answer may come first). */
    async firstOr(fallback: string | undefined): Promise<string | undefined> {
        // `end` is sent before the response, but give the notification a moment to be read.
        const message = await this.wait(200);
        return message === timedOut ? fallback : message;
    }
}

const timedOut = Symbol('timed out');

/**
 * A cancellable progress notification fed by the server's `$/progress` on a token the client
 * makes: `work` gets the token to pass as `workDoneToken`, the notification's cancellation
 * token, and the run's `end`.
 */
async function withServerProgress<T>(
    client: LanguageClient,
    title: string,
    work: (token: ProgressToken, cancel: vscode.CancellationToken, end: ProgressEnd) => Promise<T>,
): Promise<T> {
    const token = `vscode-claude/${randomUUID()}`;
    return vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title, cancellable: true },
        async (progress, cancel) => {
            const end = new ProgressEnd();
            let percentage = 0;
            const subscription = client.onProgress(WorkDoneProgress.type, token, (value) => {
                if (value.kind === 'end') {
                    end.finish(value.message);
                    return;
                }
                const increment =
                    value.percentage === undefined ? undefined : Math.max(0, value.percentage - percentage);
                percentage = value.percentage ?? percentage;
                progress.report({ message: value.message, increment });
            });
            try {
                return await work(token, cancel, end);
            } finally {
                subscription.dispose();
            }
        },
    );
}

/** Waits for the run's progress `end`; if none ever comes, notices the run is gone from `claude/runs`. */
async function waitForRunEnd(client: LanguageClient, runId: string, end: ProgressEnd): Promise<string | undefined> {
    for (;;) {
        const message = await end.wait(RUN_POLL_MS);
        if (message !== timedOut) {
            return message;
        }
        const inFlight = await client.sendRequest(runs, {});
        if (!inFlight.runs.some((run) => run.runId === runId)) {
            return end.firstOr(undefined);
        }
    }
}

function isCancellation(error: unknown): boolean {
    return (
        error instanceof vscode.CancellationError ||
        (error instanceof ResponseError && error.code === LSPErrorCodes.RequestCancelled)
    );
}

function isActionParams(value: unknown): value is ActionParams {
    if (typeof value !== 'object' || value === null || !('textDocument' in value)) {
        return false;
    }
    const document = value.textDocument;
    return typeof document === 'object' && document !== null && 'uri' in document && typeof document.uri === 'string';
}

/** The active editor's document, and its selection when one is made. */
function targetOfActiveEditor(): Target {
    const editor = vscode.window.activeTextEditor;
    if (editor === undefined) {
        throw new Error('open a file of the workspace first.');
    }
    if (editor.document.uri.scheme !== 'file') {
        throw new Error('Claude works on files of the workspace; save this document first.');
    }
    const textDocument = { uri: editor.document.uri.toString() };
    const selection = editor.selection;
    if (selection.isEmpty) {
        return { textDocument };
    }
    return {
        textDocument,
        range: {
            start: { line: selection.start.line, character: selection.start.character },
            end: { line: selection.end.line, character: selection.end.character },
        },
    };
}

/** `undefined` when the user dismissed the box. */
async function askInstruction(prompt: string, placeHolder: string, required: boolean): Promise<string | undefined> {
    const answer = await vscode.window.showInputBox({
        prompt,
        placeHolder,
        ignoreFocusOut: true,
        validateInput: (value) => (required && value.trim() === '' ? 'Tell Claude what to do.' : undefined),
    });
    return answer?.trim();
}

function showError(what: string, error: unknown): void {
    const name = what.startsWith('claude-lsp.') ? `Claude: ${what.slice('claude-lsp.'.length)}` : what;
    void vscode.window.showErrorMessage(`${name} failed: ${errorMessage(error)}`);
}
