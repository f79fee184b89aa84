/**
 * The import rules `npm test` enforces (test/layers.test.ts runs dependency-cruiser with this file):
 * protocol/ is what both programs share and imports neither; agent/ and console/ never import each
 * other; no import circle anywhere. Type-only imports count too (tsPreCompilationDeps): a circle of
 * types still ties the files' order and meaning together.
 */
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'protocol-imports-no-program',
      comment: 'protocol/ is the contract both programs share: it must not import the agent or the console.',
      severity: 'error',
      from: { path: '^protocol/' },
      to: { path: '^(agent|console)/' },
    },
    {
      name: 'agent-not-console',
      comment: 'The agent never imports the console: what both need lives in protocol/.',
      severity: 'error',
      from: { path: '^agent/' },
      to: { path: '^console/' },
    },
    {
      name: 'console-not-agent',
      comment: 'The console never imports the agent: what both need lives in protocol/.',
      severity: 'error',
      from: { path: '^console/' },
      to: { path: '^agent/' },
    },
    {
      name: 'no-circular',
      comment: 'No import circle: a circle makes load order and ownership unclear. Move the shared part into its own file.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that does not resolve is a broken file or a rule the check cannot see through.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(node_modules|dist)/' },
    tsPreCompilationDeps: true,
    moduleSystems: ['es6', 'cjs'],
    // Packages such as typebox are found through their package.json "exports" only.
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'], mainFields: ['module', 'main', 'types'] },
  },
};
