import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
    LAST_USED,
    OPTION_STEPS,
    choiceOf,
    optionFields,
    orderedChoices,
    remembered,
    runParams,
    type OptionChoice,
} from '../../src/run_options';

/** The choice labelled `label` of the review step `key`. */
function reviewChoice(key: string, label: string): OptionChoice {
    const step = OPTION_STEPS.review.find((candidate) => candidate.key === key);
    const choice = step?.choices.find((candidate) => candidate.label === label);
    assert.ok(choice, `no ${key} choice ${label}`);
    return choice;
}

describe('run options', () => {
    it('ask review for scope, severity, fixes, depth and tests; analyze for scope, depth and tests', () => {
        assert.deepEqual(
            OPTION_STEPS.review.map((step) => step.key),
            ['scope', 'minSeverity', 'fix', 'depth', 'includeTests'],
        );
        assert.deepEqual(
            OPTION_STEPS.analyze.map((step) => step.key),
            ['scope', 'depth', 'includeTests'],
        );
        // The first choice of every step is the server's default: it sets nothing.
        for (const step of [...OPTION_STEPS.review, ...OPTION_STEPS.analyze]) {
            assert.deepEqual(step.choices[0]?.fields, {}, step.key);
        }
    });

    it('turn the picks and the model into ActionParams fields', () => {
        const picked = [
            reviewChoice('scope', "This file's folder"),
            reviewChoice('minSeverity', 'Warnings and up'),
            reviewChoice('fix', 'Ask for a fix with each finding'),
            reviewChoice('depth', 'Deep'),
            reviewChoice('includeTests', 'Include the tests'),
        ];
        assert.deepEqual(optionFields(picked, ' claude-haiku-4-5 '), {
            scope: 'folder',
            minSeverity: 'warning',
            fix: true,
            depth: 'deep',
            includeTests: true,
            model: 'claude-haiku-4-5',
        });
        const defaults = OPTION_STEPS.review.map((step) => step.choices[0]).filter((c) => c !== undefined);
        assert.deepEqual(optionFields(defaults, ''), {}, 'defaults send nothing; a blank model is the setting');
    });

    it('offer the remembered choice first, marked, and read it back', () => {
        const steps = OPTION_STEPS.review;
        const picked = steps.map((step) => step.choices[step.choices.length - 1]).filter((c) => c !== undefined);
        const memory = remembered(steps, picked, 'opus');
        assert.equal(memory.model, 'opus');
        assert.equal(memory.choices.minSeverity, 'Everything, hints too');
        const severity = steps[1];
        assert.ok(severity);
        const ordered = orderedChoices(severity, memory);
        const [first] = ordered;
        assert.ok(first);
        assert.equal(first.label, 'Everything, hints too' + LAST_USED);
        assert.deepEqual(first.fields, { minSeverity: 'hint' });
        assert.equal(ordered.length, severity.choices.length);
        assert.deepEqual(choiceOf(severity, first.label)?.fields, { minSeverity: 'hint' });
        // Nothing remembered, or the default remembered: the order as defined, unmarked.
        assert.deepEqual(orderedChoices(severity, undefined), severity.choices);
        assert.deepEqual(orderedChoices(severity, remembered(steps, [], '')), severity.choices);
        assert.equal(remembered(steps, [], '  ').model, undefined);
        assert.equal(choiceOf(severity, 'Loudest'), undefined);
    });

    it('make the run parameters the run and its estimate share: a review names its scope', () => {
        const textDocument = { uri: 'file:///w/a.rs' };
        const range = { start: { line: 1, character: 0 }, end: { line: 3, character: 0 } };
        assert.deepEqual(runParams('review', { textDocument }, {}), { textDocument, scope: 'file' });
        assert.deepEqual(runParams('review', { textDocument, range }, { fix: true }), {
            textDocument,
            range,
            scope: 'selection',
            fix: true,
        });
        assert.deepEqual(runParams('review', { textDocument, range }, { scope: 'folder' }), {
            textDocument,
            range,
            scope: 'folder',
        });
        // Uncommitted changes are the whole diff: no range.
        assert.deepEqual(runParams('review', { textDocument, range }, { scope: 'changes' }), {
            textDocument,
            scope: 'changes',
        });
        assert.deepEqual(runParams('analyze', { textDocument, range }, { depth: 'deep' }), {
            textDocument,
            range,
            depth: 'deep',
        });
    });
});
