import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';

import {
    CLIENT_SETTINGS,
    SECTION,
    SERVER_SETTINGS,
    explicitValue,
    serverCommand,
    serverSettings,
    type Inspection,
} from '../../src/config';

/** The extension's directory (tests run from out/test/unit). */
const extensionRoot = path.resolve(__dirname, '..', '..', '..');
const repoRoot = path.resolve(extensionRoot, '..', '..');

interface Manifest {
    contributes: { configuration: { properties: Record<string, { default?: unknown }> } };
}

function manifest(): Manifest {
    return JSON.parse(readFileSync(path.join(extensionRoot, 'package.json'), 'utf8')) as Manifest;
}

describe('serverSettings', () => {
    it('sends only the values the user set, most specific scope first', () => {
        const inspections: Partial<Record<string, Inspection>> = {
            model: { globalValue: 'opus', workspaceValue: 'sonnet' },
            timeoutSecs: { globalValue: 600 },
            allowedTools: { workspaceFolderValue: ['Read'], globalValue: ['Bash'] },
            env: { globalValue: { ANTHROPIC_BASE_URL: 'http://127.0.0.1:9' } },
            maxTurns: {},
            cliPath: { globalValue: null },
        };
        assert.deepEqual(
            serverSettings((key) => inspections[key]),
            {
                model: 'sonnet',
                allowedTools: ['Read'],
                timeoutSecs: 600,
                env: { ANTHROPIC_BASE_URL: 'http://127.0.0.1:9' },
            },
        );
    });

    it('sends nothing when only defaults apply, so the server\u2019s defaults win', () => {
        assert.deepEqual(
            serverSettings(() => undefined),
            {},
        );
    });

    it('passes values through unchanged: the server validates and warns', () => {
        assert.deepEqual(
            serverSettings((key) => (key === 'maxConcurrent' ? { globalValue: 'many' } : undefined)),
            { maxConcurrent: 'many' },
        );
    });

    it('never asks for the client-only settings', () => {
        const asked: string[] = [];
        serverSettings((key) => {
            asked.push(key);
            return undefined;
        });
        for (const key of CLIENT_SETTINGS) {
            assert.ok(!asked.includes(key), key);
        }
    });
});

describe('explicitValue', () => {
    it('prefers language-specific values within a scope', () => {
        assert.equal(explicitValue({ workspaceFolderLanguageValue: 1, workspaceFolderValue: 2, globalValue: 3 }), 1);
        assert.equal(explicitValue({ globalLanguageValue: 'x', globalValue: 'y' }), 'x');
        assert.equal(explicitValue(undefined), undefined);
    });
});

describe('serverCommand', () => {
    it('uses claude-lsp from PATH unless serverPath is set', () => {
        assert.equal(serverCommand(undefined, '/home/me', undefined), 'claude-lsp');
        assert.equal(serverCommand(null, '/home/me', undefined), 'claude-lsp');
        assert.equal(serverCommand('  ', '/home/me', undefined), 'claude-lsp');
        assert.equal(serverCommand(42, '/home/me', undefined), 'claude-lsp');
        assert.equal(serverCommand('/opt/claude-lsp', '/home/me', undefined), '/opt/claude-lsp');
        assert.equal(serverCommand('~/bin/claude-lsp ', '/home/me', undefined), '/home/me/bin/claude-lsp');
        assert.equal(serverCommand('~', '/home/me', undefined), '/home/me');
    });

    it('prefers the server the VSIX brings to PATH, and serverPath to both', () => {
        const bundled = '/ext/server/claude-lsp';
        assert.equal(serverCommand(undefined, '/home/me', bundled), bundled);
        assert.equal(serverCommand('', '/home/me', bundled), bundled);
        assert.equal(serverCommand('/opt/claude-lsp', '/home/me', bundled), '/opt/claude-lsp');
        assert.equal(serverCommand('~/bin/claude-lsp', '/home/me', bundled), '/home/me/bin/claude-lsp');
    });
});

describe('the sandbox opt-out', () => {
    it('is taken from the user\u2019s own settings only, never from a workspace', () => {
        const fromWorkspace = serverSettings((key) =>
            key === 'dangerouslyAllowUnsandboxedBash' ? { workspaceValue: true, workspaceFolderValue: true } : undefined,
        );
        assert.equal(fromWorkspace.dangerouslyAllowUnsandboxedBash, undefined);
        const fromUser = serverSettings((key) =>
            key === 'dangerouslyAllowUnsandboxedBash' ? { globalValue: true, workspaceValue: false } : undefined,
        );
        assert.equal(fromUser.dangerouslyAllowUnsandboxedBash, true);
    });
});

describe('package.json', () => {
    it('contributes exactly the server\u2019s settings plus the client-only ones', () => {
        const contributed = Object.keys(manifest().contributes.configuration.properties).sort();
        const expected = [...SERVER_SETTINGS, ...CLIENT_SETTINGS].map((key) => `${SECTION}.${key}`).sort();
        assert.deepEqual(contributed, expected);
    });

    it('lists the same settings as the server (SETTING_NAMES in src/model/settings/schema.rs)', () => {
        const source = readFileSync(path.join(repoRoot, 'src', 'model', 'settings', 'schema.rs'), 'utf8');
        const list = /\bconst SETTING_NAMES\b[^=]*=\s*\[([^\]]*)\]/.exec(source);
        assert.ok(list, 'SETTING_NAMES not found in src/model/settings/schema.rs');
        const names = [...(list[1] ?? '').matchAll(/"([A-Za-z]+)"/g)].map((match) => match[1]);
        const serverOnly = names.filter((name) => name !== 'serverPath');
        assert.deepEqual([...serverOnly].sort(), [...SERVER_SETTINGS].sort());
    });

    it('shows the server\u2019s defaults in the settings UI', () => {
        const source = readFileSync(path.join(repoRoot, 'src', 'model', 'settings', 'schema.rs'), 'utf8');
        const defaults = /impl Default for Settings \{[\s\S]*?Self \{([\s\S]*?)\n {8}\}/.exec(source);
        assert.ok(defaults, 'Default for Settings not found in src/model/settings/schema.rs');
        const properties = manifest().contributes.configuration.properties;
        const checked: string[] = [];
        for (const match of (defaults[1] ?? '').matchAll(/(\w+): (\d+),/g)) {
            const [, field = '', value = ''] = match;
            const key = `${SECTION}.${field.replace(/_(\w)/g, (_, c: string) => c.toUpperCase())}`;
            assert.equal(properties[key]?.default, Number(value), key);
            checked.push(key);
        }
        assert.ok(checked.includes('claude.timeoutSecs') && checked.length >= 10, checked.join(', '));
    });
});
