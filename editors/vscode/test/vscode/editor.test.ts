// The extension inside a real VS Code (code-server in Chromium), driven as a user drives it:
// the palette, the instruction box, the progress notification, the diff review, the status bar,
// the output channel. The real claude-lsp and the real CLI run against the fake API.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import { FakeApi, NAME_NOT_TRIMMED, Workspace, editScript, serverBinary } from '../integration/harness';
import { CodeServer, type Launch, UI_TIMEOUT_MS, bundledVsix, userSettings } from './code_server';

const TEST_TIMEOUT_MS = 600_000;
const GREET = 'export function greet(name: string): string {\n    return `hello ${name}`;\n}\n';

const FAREWELL = 'export function farewell(name: string): string {\n    return `bye ${name}`;\n}\n';

/** Read greet.ts, rename greet to welcome, then answer in three stream chunks. */
const RENAME_SCRIPT = editScript('src/greet.ts', 'function greet(', 'function welcome(', ['Renamed greet ', 'to ', 'welcome.']);

/** A review's answer: one finding, through the CLI's StructuredOutput tool. */
const REVIEW_SCRIPT = {
    turns: [
        {
            toolUse: {
                name: 'StructuredOutput',
                input: {
                    findings: [NAME_NOT_TRIMMED],
                    summary: 'One problem.',
                },
            },
        },
    ],
};

/** The notifications about Claude or its language server (VS Code's own are left out). */
function claudeMessages(messages: string[]): string[] {
    return messages.filter((message) => /claude|server/i.test(message));
}

/** This process's PATH without the directories that hold `program`. */
function pathWithout(program: string): string {
    return (process.env.PATH ?? '')
        .split(path.delimiter)
        .filter((dir) => dir !== '' && !existsSync(path.join(dir, program)))
        .join(path.delimiter);
}

/** The executables of live processes that lie under `dir`. */
function executablesUnder(dir: string): string[] {
    const found: string[] = [];
    for (const entry of readdirSync('/proc')) {
        try {
            const exe = readlinkSync(`/proc/${entry}/exe`);
            if (exe.startsWith(dir + path.sep)) {
                found.push(exe);
            }
        } catch {
            // Not a process, gone meanwhile, or not ours to read.
        }
    }
    return found;
}

/** Selects all of src/greet.ts, refactors it from the palette and accepts the one changed file. */
async function refactorGreetToWelcome(editor: CodeServer): Promise<void> {
    const { page } = editor;
    await editor.statusItem().locator('.codicon-sparkle').waitFor({ timeout: UI_TIMEOUT_MS });
    await editor.openAndSelectAll('src/greet.ts');
    await editor.runCommand('Claude: Refactor…');
    await editor.answerInput('rename greet to welcome', 'How should Claude refactor the selection?');
    await editor.toasts('Claude: refactor').first().waitFor({ timeout: UI_TIMEOUT_MS });

    // The diff review: one changed file, checked; Enter applies it.
    const review = page.locator('.quick-input-widget', { hasText: '1 changed file' });
    await review.waitFor({ timeout: UI_TIMEOUT_MS });
    await review.locator('.quick-input-list .monaco-list-row', { hasText: 'greet.ts' }).waitFor({ timeout: UI_TIMEOUT_MS });
    await review.locator('input').press('Enter');
    await editor.toasts(/Claude: refactor: applied 1 file/).waitFor({ timeout: UI_TIMEOUT_MS });
    await page.locator('.editor-instance .view-lines', { hasText: 'function welcome(' }).first().waitFor({ timeout: UI_TIMEOUT_MS });
}

/** Opens `files` in code-server with `script` behind the fake API, runs `body`, cleans up; a screenshot on failure. */
async function inEditor(
    name: string,
    files: Record<string, string>,
    script: unknown,
    settings: Record<string, unknown>,
    body: (editor: CodeServer, workspace: Workspace) => Promise<void>,
    launch: Launch = {},
): Promise<void> {
    const workspace = new Workspace(files);
    const api = await FakeApi.start(script, workspace.base);
    let editor: CodeServer | undefined;
    try {
        editor = await CodeServer.open(workspace, api, settings, launch);
        await body(editor, workspace);
    } catch (error) {
        if (editor !== undefined) {
            const shot = await editor.screenshot(name).catch((reason: unknown) => `(no screenshot: ${String(reason)})`);
            const notifications = await editor.notifications().catch((reason: unknown) => `(unreadable: ${String(reason)})`);
            process.stderr.write(
                `screenshot of the failure: ${shot}\nnotifications:\n${notifications}\n` +
                    `code-server said:\n${editor.output().slice(-4000)}\n`,
            );
        }
        throw error;
    } finally {
        await editor?.close();
        await api.stop();
        await workspace.remove();
    }
}

describe('the extension in code-server', () => {
    it('refactors from the palette: progress, diff review, whole lines in the output, cost in the status bar', { timeout: TEST_TIMEOUT_MS }, () =>
        inEditor('refactor', { 'src/greet.ts': GREET }, RENAME_SCRIPT, userSettings(), async (editor, workspace) => {
            await refactorGreetToWelcome(editor);
            assert.equal(workspace.read('src/greet.ts'), GREET, 'the edit waits in the editor, unsaved');

            // Item 1: the status bar shows what the run cost.
            await editor.statusItem().filter({ hasText: /Claude \$\d+\.\d{2}/ }).waitFor({ timeout: UI_TIMEOUT_MS });

            // Item 3: the streamed answer is one line of the Claude output.
            const output = await editor.claudeOutput();
            await output.filter({ hasText: 'Renamed greet to welcome.' }).waitFor({ timeout: UI_TIMEOUT_MS });
            assert.doesNotMatch(await CodeServer.linesText(output), /Renamed greet *\n/);
        }),
    );

    it('the Linux VSIX brings its server: no claude.serverPath, no claude-lsp on PATH, a refactor served', { timeout: TEST_TIMEOUT_MS }, () =>
        inEditor(
            'bundled-server',
            { 'src/greet.ts': GREET },
            RENAME_SCRIPT,
            // An undefined value is left out of settings.json: serverPath stays unset.
            userSettings({ 'claude.serverPath': undefined }),
            async (editor, workspace) => {
                await refactorGreetToWelcome(editor);
                // The server that answered is the one inside the installed extension.
                const servers = executablesUnder(CodeServer.extensionsDir(workspace));
                assert.deepEqual(
                    servers.map((exe) => path.relative(CodeServer.extensionsDir(workspace), exe).split(path.sep).slice(1)),
                    [['server', 'claude-lsp']],
                );
            },
            { vsix: bundledVsix, path: pathWithout('claude-lsp') },
        ),
    );

    it('generates a new file: accepted, it is on disk with its content', { timeout: TEST_TIMEOUT_MS }, () =>
        inEditor(
            'generate',
            { 'src/greet.ts': GREET },
            {
                turns: [
                    { toolUse: { name: 'Write', input: { file_path: '{{cwd}}/src/farewell.ts', content: FAREWELL } } },
                    { text: 'Wrote src/farewell.ts.' },
                ],
            },
            userSettings(),
            async (editor, workspace) => {
                await editor.statusItem().locator('.codicon-sparkle').waitFor({ timeout: UI_TIMEOUT_MS });
                await editor.openAndSelectAll('src/greet.ts');
                await editor.runCommand('Claude: Generate…');
                await editor.answerInput('a farewell function', 'What should Claude generate?');
                const review = editor.page.locator('.quick-input-widget', { hasText: '1 changed file' });
                await review.locator('.quick-input-list .monaco-list-row', { hasText: 'farewell.ts' }).waitFor({ timeout: UI_TIMEOUT_MS });
                await review.locator('input').press('Enter');
                await editor.toasts(/Claude: generate: applied 1 file/).waitFor({ timeout: UI_TIMEOUT_MS });
                assert.equal(workspace.read('src/farewell.ts'), FAREWELL);
            },
        ),
    );

    it('cancels from the progress notification: one toast, nothing applied', { timeout: TEST_TIMEOUT_MS }, () =>
        inEditor('cancel', { 'src/greet.ts': GREET }, { turns: [{ hang: true }] }, userSettings(), async (editor, workspace) => {
            await editor.statusItem().locator('.codicon-sparkle').waitFor({ timeout: UI_TIMEOUT_MS });
            await editor.openAndSelectAll('src/greet.ts');
            await editor.runCommand('Claude: Refactor…');
            await editor.answerInput('rename greet to welcome', 'How should Claude refactor the selection?');
            const progress = editor.toasts('Claude: refactor').first();
            await progress.locator('.monaco-button', { hasText: 'Cancel' }).click({ timeout: UI_TIMEOUT_MS });
            const cancelled = editor.toasts('Claude: refactor cancelled; nothing was applied.');
            await cancelled.first().waitFor({ timeout: UI_TIMEOUT_MS });
            assert.equal(await cancelled.count(), 1);
            assert.equal(workspace.read('src/greet.ts'), GREET);
        }),
    );

    it('after a failed start: one error toast, then Restart starts the server', { timeout: TEST_TIMEOUT_MS }, () =>
        inEditor(
            'restart',
            { 'src/greet.ts': GREET },
            { turns: [{ text: 'unused' }] },
            userSettings({ 'claude.serverPath': '/nonexistent/claude-lsp' }),
            async (editor) => {
                const failed = editor.toasts('could not start the language server "/nonexistent/claude-lsp"');
                await failed.first().waitFor({ timeout: UI_TIMEOUT_MS });
                await editor.statusItem().locator('.codicon-error').waitFor({ timeout: UI_TIMEOUT_MS });
                assert.equal(await editor.toasts(/claude|Claude/).count(), 1, 'one toast for one failed start');

                // Items 2 and 5: Open Settings shows the setting in the User tab; its Restart button
                // restarts with the User value.
                await failed.first().locator('.monaco-button', { hasText: 'Open Settings' }).click({ timeout: UI_TIMEOUT_MS });
                await editor.fillSetting('Server Path', serverBinary);
                const prompt = editor.toasts('restart the language server to use the new claude.serverPath');
                await prompt.locator('.monaco-button', { hasText: 'Restart' }).click({ timeout: UI_TIMEOUT_MS });
                await editor.statusItem().locator('.codicon-sparkle').waitFor({ timeout: UI_TIMEOUT_MS });
            },
        ),
    );

    it('a server that exits at once: one error toast; Restart Server from the palette starts the fixed one', { timeout: TEST_TIMEOUT_MS }, () =>
        inEditor(
            'restart-palette',
            { 'src/greet.ts': GREET },
            { turns: [{ text: 'unused' }] },
            userSettings({ 'claude.serverPath': '/bin/false' }),
            async (editor) => {
                const failed = editor.toasts('could not start the language server "/bin/false"');
                await failed.first().waitFor({ timeout: UI_TIMEOUT_MS });
                await editor.statusItem().locator('.codicon-error').waitFor({ timeout: UI_TIMEOUT_MS });
                // Item 4: one toast, not the language client's as well (it would have come first).
                assert.equal(await editor.toasts(/claude|server/i).count(), 1, 'one toast for one failed start');

                // Item 2: the path fixed in the Settings editor, restarted from the palette (not the prompt).
                await failed.first().locator('.monaco-button', { hasText: 'Open Settings' }).click({ timeout: UI_TIMEOUT_MS });
                await editor.fillSetting('Server Path', serverBinary);
                await editor.toasts('restart the language server to use the new claude.serverPath').waitFor({ timeout: UI_TIMEOUT_MS });
                await editor.closeModalEditor();
                await editor.runCommand('Claude: Restart Server');
                await editor.statusItem().locator('.codicon-sparkle').waitFor({ timeout: UI_TIMEOUT_MS });
                // The server answers: Show Usage asks it for the usage.
                await editor.runCommand('Claude: Show Usage');
                await editor.page.locator('.monaco-dialog-box', { hasText: 'This window: $0.0000 in 0 runs' }).waitFor({ timeout: UI_TIMEOUT_MS });
                await editor.page.keyboard.press('Escape');

                // No restart loop of the server that failed: nothing more was said after the prompt
                // (the failed start's toast went with its Open Settings click).
                assert.deepEqual(claudeMessages(await editor.notificationMessages()), [
                    'Claude: restart the language server to use the new claude.serverPath?',
                ]);
            },
        ),
    );

    it('reviews from the palette: findings in Problems, the answer as one toast, readable findings in the output', { timeout: TEST_TIMEOUT_MS }, () =>
        inEditor('review', { 'src/greet.ts': GREET }, REVIEW_SCRIPT, userSettings(), async (editor) => {
            const { page } = editor;
            await editor.statusItem().locator('.codicon-sparkle').waitFor({ timeout: UI_TIMEOUT_MS });
            await editor.openAndSelectAll('src/greet.ts');
            await editor.runCommand('Claude: Review');
            await editor.toasts('Claude: One problem.').waitFor({ timeout: UI_TIMEOUT_MS });
            await page.keyboard.press('Control+Shift+M');
            await page.locator('.markers-panel', { hasText: 'The name is not trimmed' }).waitFor({ timeout: UI_TIMEOUT_MS });

            // Item 4: the findings read as lines in the output, not as the CLI's JSON report.
            const output = await editor.claudeOutput();
            await output.filter({ hasText: 'src/greet.ts:2:19: warning [correctness] The name is not trimmed' }).waitFor({ timeout: UI_TIMEOUT_MS });
            // The extension's line about the ended review comes last: the client is done.
            await output.filter({ hasText: '── Claude: review · 1 finding' }).waitFor({ timeout: UI_TIMEOUT_MS });
            assert.doesNotMatch(await CodeServer.linesText(output), /"findings"/);

            // Item 4: one toast for one finished review (the server's answer).
            assert.deepEqual(claudeMessages(await editor.notificationMessages()), ['Claude: One problem.']);
        }),
    );

    it('reviews with options: every choice of every step shows its estimate, then the review runs', { timeout: TEST_TIMEOUT_MS }, () =>
        inEditor('review-options', { 'src/greet.ts': GREET }, REVIEW_SCRIPT, userSettings(), async (editor) => {
            const { page } = editor;
            await editor.statusItem().locator('.codicon-sparkle').waitFor({ timeout: UI_TIMEOUT_MS });
            await editor.openAndSelectAll('src/greet.ts');
            await editor.runCommand('Claude: Review with Options…');
            const estimate = /≈ \$\d+\.\d{4}–\$\d+\.\d{4} · ~\d+(\.\d)?k? input tokens \(estimate\)/;
            for (const [title, choices] of [
                ['What should Claude look at?', 4],
                ['Which findings?', 4],
                ['Fixes?', 2],
                ['How thorough?', 3],
                ['Tests?', 2],
            ] as const) {
                const pick = page.locator('.quick-input-widget', { hasText: `Claude: review — ${title}` });
                await pick.waitFor({ timeout: UI_TIMEOUT_MS });
                const rows = pick.locator('.quick-input-list .monaco-list-row');
                // The server's estimate of each choice's run arrives as the choice's detail.
                await rows.filter({ hasText: estimate }).nth(choices - 1).waitFor({ timeout: UI_TIMEOUT_MS });
                assert.equal(await rows.count(), choices, title);
                await pick.locator('input').press('Enter');
            }
            await editor.answerInput('', 'A model name or alias');
            await editor.toasts('Claude: One problem.').waitFor({ timeout: UI_TIMEOUT_MS });
            const output = await editor.claudeOutput();
            await output.filter({ hasText: '── Claude: review · 1 finding' }).waitFor({ timeout: UI_TIMEOUT_MS });
        }),
    );

    it('cancels a review from its progress notification: one toast', { timeout: TEST_TIMEOUT_MS }, () =>
        inEditor('review-cancel', { 'src/greet.ts': GREET }, { turns: [{ hang: true }] }, userSettings(), async (editor) => {
            await editor.statusItem().locator('.codicon-sparkle').waitFor({ timeout: UI_TIMEOUT_MS });
            await editor.openAndSelectAll('src/greet.ts');
            await editor.runCommand('Claude: Review');
            const progress = editor.toasts('Claude: review').first();
            await progress.locator('.monaco-button', { hasText: 'Cancel' }).click({ timeout: UI_TIMEOUT_MS });
            await editor.toasts('Claude: review cancelled; nothing was applied').waitFor({ timeout: UI_TIMEOUT_MS });
            const output = await editor.claudeOutput();
            await output.filter({ hasText: '── Claude: review · Cancelled' }).waitFor({ timeout: UI_TIMEOUT_MS });
            assert.deepEqual(claudeMessages(await editor.notificationMessages()), [
                'Claude: review cancelled; nothing was applied',
            ]);
        }),
    );

    it('analyzes from the context menu: labelled Claude entries, the answer in a preview, no unsaved tab', { timeout: TEST_TIMEOUT_MS }, () =>
        inEditor(
            'analyze',
            { 'src/greet.ts': GREET },
            { turns: [{ text: 'It greets.\n\nThe name is used as given.' }] },
            userSettings(),
            async (editor) => {
                const { page } = editor;
                await editor.statusItem().locator('.codicon-sparkle').waitFor({ timeout: UI_TIMEOUT_MS });
                await editor.openAndSelectAll('src/greet.ts');

                // Item 4: our entries say they are Claude's, next to VS Code's own "Refactor...".
                const menu = await editor.openContextMenu();
                for (const title of ['Claude: Refactor…', 'Claude: Analyze…', 'Claude: Review']) {
                    await menu.locator('.action-label', { hasText: title }).waitFor({ timeout: UI_TIMEOUT_MS });
                }
                await menu.locator('.action-item', { hasText: 'Claude: Analyze…' }).click();
                await editor.answerInput('', 'What should Claude look at?');

                // Item 4: the answer is a read-only preview, not an untitled buffer to save.
                await page.locator('.tab', { hasText: 'Claude analyze 1.md' }).waitFor({ timeout: UI_TIMEOUT_MS });
                await page
                    .frameLocator('iframe.webview.ready')
                    .frameLocator('#active-frame')
                    .locator('body', { hasText: 'The name is used as given.' })
                    .waitFor({ timeout: UI_TIMEOUT_MS });
                assert.equal(await page.locator('.tab.dirty').count(), 0, 'no unsaved tab');
                assert.equal(await page.locator('.tab', { hasText: /Untitled/ }).count(), 0, 'no untitled tab');
            },
        ),
    );
});
