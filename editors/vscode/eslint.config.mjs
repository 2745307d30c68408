// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
    { ignores: ['dist/', 'out/', 'node_modules/', 'src/generated/', 'eslint.config.mjs'] },
    eslint.configs.recommended,
    ...tseslint.configs.strictTypeChecked,
    {
        languageOptions: {
            parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
        },
        rules: {
            // Template literals with numbers read fine.
            '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
            '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
            'no-console': 'error',
            eqeqeq: 'error',
        },
    },
    // Build scripts are plain JavaScript, outside the TypeScript project.
    { files: ['**/*.mjs'], ...tseslint.configs.disableTypeChecked },
    {
        files: ['test/**/*.ts'],
        rules: {
            // node:test's describe/it return promises the runner awaits itself.
            '@typescript-eslint/no-floating-promises': 'off',
        },
    },
);
