// Drives the real claude-lsp binary, the real `claude` CLI and the fake Anthropic API through
// vscode-jsonrpc, the JSON-RPC layer vscode-languageclient itself runs on.

import { type ChildProcessByStdio, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
    existsSync,
    mkdirSync,
    mkdtempSync,
    readdirSync,
    readFileSync,
    readlinkSync,
    rmSync,
    writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';

import {
    type MessageConnection,
    StreamMessageReader,
    StreamMessageWriter,
    createMessageConnection,
} from 'vscode-jsonrpc/node';
import {
    type InitializeResult,
    type ProgressToken,
    type WorkDoneProgressBegin,
    type WorkDoneProgressEnd,
    type WorkDoneProgressReport,
    WorkDoneProgress,
} from 'vscode-languageserver-protocol';

import { vscodeClientCapabilities } from './vscode_capabilities';

/** editors/vscode (the tests run from out/test/integration). */
export const extensionRoot = path.resolve(__dirname, '..', '..', '..');
export const repoRoot = path.resolve(extensionRoot, '..', '..');

const targetDir = process.env.CARGO_TARGET_DIR ?? path.join(repoRoot, 'target');
export const serverBinary = path.join(targetDir, 'debug', 'claude-lsp');
export const fakeApiBinary = path.join(targetDir, 'debug', 'examples', 'fake_api_server');

/** The real CLI the tests run against: `CLAUDE_LSP_TEST_CLI`, else the pinned one in tests/cli. */
export function cliPath(): string {
    const version = process.env.CLAUDE_LSP_TEST_CLI_VERSION ?? 'newest';
    const cli =
        process.env.CLAUDE_LSP_TEST_CLI ??
        path.join(repoRoot, 'tests', 'cli', 'node_modules', `claude-code-${version}`, 'bin', 'claude.exe');
    if (!existsSync(cli)) {
        throw new Error(`the claude CLI is not at ${cli}: run \`npm ci\` in tests/cli, or set CLAUDE_LSP_TEST_CLI`);
    }
    return cli;
}

function requireBinary(binary: string): string {
    if (!existsSync(binary)) {
        throw new Error(`${binary} is missing: run \`cargo build --bin claude-lsp --example fake_api_server\``);
    }
    return binary;
}

/** Polls `check` until it answers something other than `undefined`. */
export async function waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = check();
        if (value !== undefined) {
            return value;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
    }
}

/**
 * A fake-API script for an edit: read `file`, replace `oldString` with `newString` in it, then
 * answer `answer` (one text, or chunks streamed 50 ms apart).
 */
export function editScript(file: string, oldString: string, newString: string, answer: string | string[]): unknown {
    return {
        turns: [
            { toolUse: { name: 'Read', input: { file_path: `{{cwd}}/${file}` } } },
            { toolUse: { name: 'Edit', input: { file_path: `{{cwd}}/${file}`, old_string: oldString, new_string: newString } } },
            typeof answer === 'string' ? { text: answer } : { slowText: { chunks: answer, intervalMs: 50 } },
        ],
    };
}

/** A review finding on line 2 of a src/greet.ts whose line 2 uses `${name}`, as the model reports it. */
export const NAME_NOT_TRIMMED = {
    path: 'src/greet.ts',
    startLine: 2,
    endLine: 2,
    severity: 'warning',
    category: 'correctness',
    title: 'The name is not trimmed',
    explanation: 'Leading spaces end up in the greeting.',
    snippet: '${name}',
};

/** A temporary git repository holding the given files, committed, plus a HOME for the CLI. */
export class Workspace {
    readonly base = mkdtempSync(path.join(tmpdir(), 'claude-lsp-vscode-'));
    readonly root = path.join(this.base, 'ws');
    readonly home = path.join(this.base, 'home');

    constructor(files: Record<string, string>) {
        mkdirSync(this.root, { recursive: true });
        mkdirSync(path.join(this.home, '.claude'), { recursive: true });
        for (const [relative, text] of Object.entries(files)) {
            mkdirSync(path.dirname(this.path(relative)), { recursive: true });
            writeFileSync(this.path(relative), text);
        }
        const git = (...args: string[]): void => {
            execFileSync('git', args, { cwd: this.root, stdio: 'pipe' });
        };
        git('init', '-q');
        git('add', '-A');
        git('-c', 'user.name=test', '-c', 'user.email=test@example.invalid', 'commit', '-q', '-m', 'initial');
    }

    path(relative: string): string {
        return path.join(this.root, relative);
    }

    uri(relative: string): string {
        return pathToFileURL(this.path(relative)).toString();
    }

    read(relative: string): string {
        return readFileSync(this.path(relative), 'utf8');
    }

    /**
     * Deletes everything, once no process works in it any more: the server, the CLI and git end a
     * moment after the editor closes, and may still be writing into their cache here.
     */
    async remove(): Promise<void> {
        await waitFor(`no process using ${this.base}`, 60_000, () =>
            processesUsing(this.base).length === 0 ? true : undefined,
        );
        rmSync(this.base, { recursive: true, force: true });
    }
}

/** Live processes (not this one) whose working directory or environment names `dir`. */
function processesUsing(dir: string): number[] {
    const found: number[] = [];
    for (const entry of readdirSync('/proc')) {
        const pid = Number(entry);
        if (!Number.isInteger(pid) || pid === process.pid) {
            continue;
        }
        try {
            // A zombie has no cwd to read: it writes nothing any more.
            const cwd = readlinkSync(`/proc/${pid}/cwd`);
            if (cwd.startsWith(dir) || readFileSync(`/proc/${pid}/environ`, 'latin1').includes(dir)) {
                found.push(pid);
            }
        } catch {
            // Gone meanwhile, or not ours to read.
        }
    }
    return found;
}

/** One request the fake API received, as its `--record` file states it. */
export interface RecordedRequest {
    method: string;
    path: string;
    turnIndex: number;
    cwd: string | null;
    body: unknown;
}

/** The fake Anthropic API (examples/fake_api_server.rs) in its own process. */
export class FakeApi {
    private constructor(
        private readonly child: ChildProcessByStdio<Writable, Readable, Readable>,
        readonly baseUrl: string,
        private readonly recordPath: string,
    ) {}

    /** Starts it with a script (see fake_api_server.rs for the format) and waits until it serves. */
    static async start(script: unknown, dir: string): Promise<FakeApi> {
        const scriptPath = path.join(dir, 'fake-api-script.json');
        const recordPath = path.join(dir, 'fake-api-requests.jsonl');
        writeFileSync(scriptPath, JSON.stringify(script));
        const child = spawn(requireBinary(fakeApiBinary), ['--script', scriptPath, '--record', recordPath], {
            stdio: ['pipe', 'pipe', 'pipe'],
        });
        let stderr = '';
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
        let stdout = '';
        child.stdout.setEncoding('utf8');
        const ready = new Promise<string>((resolve, reject) => {
            child.stdout.on('data', (chunk: string) => {
                stdout += chunk;
                const newline = stdout.indexOf('\n');
                if (newline >= 0) {
                    const first = stdout.slice(0, newline);
                    try {
                        const line = JSON.parse(first) as { baseUrl?: unknown };
                        if (typeof line.baseUrl !== 'string') {
                            throw new Error('no baseUrl');
                        }
                        resolve(line.baseUrl);
                    } catch (error) {
                        reject(new Error(`fake API said ${JSON.stringify(first)} (${String(error)})`));
                    }
                }
            });
            child.on('exit', (code) => reject(new Error(`fake API exited (${code}) before it was ready: ${stderr}`)));
            setTimeout(() => reject(new Error(`fake API not ready after 30 s: ${stderr}`)), 30_000).unref();
        });
        try {
            return new FakeApi(child, await ready, recordPath);
        } catch (error) {
            child.kill('SIGKILL');
            throw error;
        }
    }

    requests(): RecordedRequest[] {
        if (!existsSync(this.recordPath)) {
            return [];
        }
        return readFileSync(this.recordPath, 'utf8')
            .split('\n')
            .filter((line) => line !== '')
            .map((line) => JSON.parse(line) as RecordedRequest);
    }

    async waitForRequests(count: number, timeoutMs = 60_000): Promise<RecordedRequest[]> {
        return waitFor(`${count} API request(s)`, timeoutMs, () => {
            const requests = this.requests();
            return requests.length >= count ? requests : undefined;
        });
    }

    /** Closing its stdin stops it. */
    async stop(): Promise<void> {
        if (this.child.exitCode !== null || this.child.signalCode !== null) {
            return;
        }
        const exited = once(this.child, 'exit');
        this.child.stdin.end();
        const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
    }
}

export type ProgressValue = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

export interface Notification {
    method: string;
    params: unknown;
}

/** claude-lsp over stdio, initialized the way VS Code initializes a language server. */
export class ServerSession {
    readonly notifications: Notification[] = [];
    readonly serverRequests: Notification[] = [];
    private readonly progress = new Map<ProgressToken, ProgressValue[]>();
    private stderrText = '';

    private constructor(
        private readonly child: ChildProcessByStdio<Writable, Readable, Readable>,
        readonly connection: MessageConnection,
        readonly initializeResult: InitializeResult,
    ) {}

    static async start(workspace: Workspace, api: FakeApi, settings: Record<string, unknown> = {}): Promise<ServerSession> {
        const allSettings = { cliPath: cliPath(), ...settings };
        const child = spawn(requireBinary(serverBinary), ['--stdio'], {
            cwd: workspace.root,
            env: serverEnv(workspace, api),
            stdio: ['pipe', 'pipe', 'pipe'],
        });
        const connection = createMessageConnection(
            new StreamMessageReader(child.stdout),
            new StreamMessageWriter(child.stdin),
        );
        const pending = { notifications: [] as Notification[], requests: [] as Notification[] };
        const workspaceFolders = [{ uri: pathToFileURL(workspace.root).toString(), name: 'ws' }];
        // What VS Code answers, as far as a test needs it.
        connection.onRequest('window/workDoneProgress/create', (params: unknown) => {
            pending.requests.push({ method: 'window/workDoneProgress/create', params });
            return null;
        });
        connection.onRequest('workspace/configuration', (params: { items: { section?: string }[] }) =>
            params.items.map((item) => (item.section === 'claude' ? allSettings : null)),
        );
        connection.onRequest('workspace/workspaceFolders', () => workspaceFolders);
        connection.onRequest((method: string, params: unknown) => {
            pending.requests.push({ method, params });
            if (method === 'workspace/applyEdit') {
                return { applied: false, failureReason: 'the test client applies nothing' };
            }
            if (method === 'window/showDocument') {
                return { success: true };
            }
            return null;
        });
        connection.onNotification((method: string, params: unknown) => {
            pending.notifications.push({ method, params });
        });
        let serverLog = '';
        child.stderr.setEncoding('utf8').on('data', (chunk: string) => (serverLog += chunk));
        // A dead server fails every pending request at once instead of hanging the test.
        child.on('exit', () => {
            connection.dispose();
        });
        connection.listen();

        const initialize = connection.sendRequest<InitializeResult>('initialize', {
            processId: process.pid,
            clientInfo: { name: 'Visual Studio Code', version: '1.82.0' },
            locale: 'en',
            rootPath: workspace.root,
            rootUri: workspaceFolders[0]?.uri ?? null,
            capabilities: vscodeClientCapabilities,
            initializationOptions: allSettings,
            trace: 'off',
            workspaceFolders,
        });
        let initializeResult: InitializeResult;
        try {
            initializeResult = await initialize;
        } catch (error) {
            child.kill('SIGKILL');
            throw new Error(`initialize failed (${String(error)}); server stderr:\n${serverLog}`);
        }
        await connection.sendNotification('initialized', {});
        const session = new ServerSession(child, connection, initializeResult);
        session.notifications.push(...pending.notifications);
        session.serverRequests.push(...pending.requests);
        // Keep collecting into the session from now on.
        pending.notifications = session.notifications;
        pending.requests = session.serverRequests;
        session.stderrText = serverLog;
        child.stderr.on('data', (chunk: string) => (session.stderrText += chunk));
        connection.onUnhandledProgress(({ token, value }) => {
            session.record(token, value as ProgressValue);
        });
        return session;
    }

    /** Collects `$/progress` on a token the client made (before it is used, as the client does). */
    watchProgress(token: ProgressToken): void {
        this.progress.set(token, []);
        this.connection.onProgress(WorkDoneProgress.type, token, (value) => {
            this.record(token, value);
        });
    }

    private record(token: ProgressToken, value: ProgressValue): void {
        const values = this.progress.get(token) ?? [];
        values.push(value);
        this.progress.set(token, values);
    }

    /** The token's progress, once its `end` has arrived. */
    async progressUntilEnd(token: ProgressToken, timeoutMs = 30_000): Promise<ProgressValue[]> {
        return waitFor(`the end of progress ${token}`, timeoutMs, () => {
            const values = this.progress.get(token) ?? [];
            return values.some((value) => value.kind === 'end') ? values : undefined;
        });
    }

    notificationsOf(method: string): unknown[] {
        return this.notifications.filter((n) => n.method === method).map((n) => n.params);
    }

    /** What the server logged on stderr: shown when a test fails. */
    get stderr(): string {
        return this.stderrText;
    }

    /** shutdown → exit, as VS Code stops a server; the process must then exit by itself. */
    async stop(): Promise<void> {
        if (this.child.exitCode === null && this.child.signalCode === null) {
            const exited = once(this.child, 'exit');
            const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
            try {
                await this.connection.sendRequest('shutdown');
                await this.connection.sendNotification('exit');
            } catch {
                this.child.kill('SIGKILL');
            }
            await exited;
            clearTimeout(timer);
        }
        this.connection.dispose();
    }

    get exitCode(): number | null {
        return this.child.exitCode;
    }
}

/** The test process's environment without anything that would steer the CLI elsewhere. */
/** The environment the server (and so the CLI) runs in: the fake API, the workspace's HOME. */
export function serverEnv(workspace: Workspace, api: FakeApi): NodeJS.ProcessEnv {
    return {
        ...inheritedEnv(),
        ANTHROPIC_BASE_URL: api.baseUrl,
        ANTHROPIC_API_KEY: 'sk-ant-test-0000dummy',
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
        DISABLE_AUTOUPDATER: '1',
        CLAUDE_CODE_MAX_RETRIES: '1',
        HOME: workspace.home,
        CLAUDE_CONFIG_DIR: path.join(workspace.home, '.claude'),
        XDG_CACHE_HOME: path.join(workspace.base, 'cache'),
    };
}

function inheritedEnv(): NodeJS.ProcessEnv {
    return Object.fromEntries(
        Object.entries(process.env).filter(([name]) => !/^(ANTHROPIC_|CLAUDE)/.test(name)),
    );
}
