// The extension inside a real VS Code (code-server in Chromium), driven as a user drives it:
// the palette, the instruction box, the progress notification, the diff review, the status bar,
// the output channel. The real claude-lsp and the real CLI run against the fake API.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { FakeApi, Workspace, serverBinary } from '../integration/harness';
import { CodeServer, UI_TIMEOUT_MS, userSettings } from './code_server';

const TEST_TIMEOUT_MS = 600_000;
const GREET = 'export function greet(name: string): string {\n    return `hello ${name}`;\n}\n';

const FAREWELL = 'export function farewell(name: string): string {\n    return `bye ${name}`;\n}\n';

/** Read greet.ts, rename greet to welcome, then answer in three stream chunks. */
const RENAME_SCRIPT = {
    turns: [
        { toolUse: { name: 'Read', input: { file_path: '{{cwd}}/src/greet.ts' } } },
        {
            toolUse: {
                name: 'Edit',
                input: { file_path: '{{cwd}}/src/greet.ts', old_string: 'function greet(', new_string: 'function welcome(' },
            },
        },
        { slowText: { chunks: ['Renamed greet ', 'to ', 'welcome.'], intervalMs: 50 } },
    ],
};

/** Opens `files` in code-server with `script` behind the fake API, runs `body`, cleans up; a screenshot on failure. */
async function inEditor(
    name: string,
    files: Record<string, string>,
    script: unknown,
    settings: Record<string, unknown>,
    body: (editor: CodeServer, workspace: Workspace) => Promise<void>,
): Promise<void> {
    const workspace = new Workspace(files);
    const api = await FakeApi.start(script, workspace.base);
    let editor: CodeServer | undefined;
    try {
        editor = await CodeServer.open(workspace, api, settings);
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
        workspace.remove();
    }
}

describe('the extension in code-server', () => {
    it('refactors from the palette: progress, diff review, whole lines in the output, cost in the status bar', { timeout: TEST_TIMEOUT_MS }, () =>
        inEditor('refactor', { 'src/greet.ts': GREET }, RENAME_SCRIPT, userSettings(), async (editor, workspace) => {
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
            assert.equal(workspace.read('src/greet.ts'), GREET, 'the edit waits in the editor, unsaved');

            // Item 1: the status bar shows what the run cost.
            await editor.statusItem().filter({ hasText: /Claude \$\d+\.\d{2}/ }).waitFor({ timeout: UI_TIMEOUT_MS });

            // Item 3: the streamed answer is one line of the Claude output.
            await editor.runCommand('Claude: Show Output');
            const output = page.locator('.output-view .view-lines, .panel .monaco-editor .view-lines').first();
            await output.filter({ hasText: 'Renamed greet to welcome.' }).waitFor({ timeout: UI_TIMEOUT_MS });
            assert.doesNotMatch(await output.innerText(), /Renamed greet \n/);
        }),
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
                const setting = editor.page.locator('.settings-editor .setting-item', { hasText: 'Server Path' }).first();
                await setting.locator('input').fill(serverBinary, { timeout: UI_TIMEOUT_MS });
                await setting.locator('input').press('Enter');
                const prompt = editor.toasts('restart the language server to use the new claude.serverPath');
                await prompt.locator('.monaco-button', { hasText: 'Restart' }).click({ timeout: UI_TIMEOUT_MS });
                await editor.statusItem().locator('.codicon-sparkle').waitFor({ timeout: UI_TIMEOUT_MS });
            },
        ),
    );
});
