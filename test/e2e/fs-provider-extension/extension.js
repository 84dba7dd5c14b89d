// Test-only: a read-only FileSystemProvider on the `gradlens-test:` scheme that serves a local folder (the
// `gradlensTest.root` setting), standing in for a remote file system (Remote-SSH, a container): a
// `gradlens-test:/run.gradlens.jsonl` URI names no file on the extension host's disk, so Gradient Lens can
// only read it through vscode.workspace.fs. The status bar counts the provider's calls, for the test to check
// that the reads went through it.
const vscode = require('vscode');
const fs = require('node:fs');
const path = require('node:path');

const SCHEME = 'gradlens-test';

function activate(context) {
  const calls = { stat: 0, readFile: 0, readDirectory: 0 };
  const status = vscode.window.createStatusBarItem('gradlensTest.calls', vscode.StatusBarAlignment.Left, 1000);
  const show = () => {
    status.text = `gradlens-test: ${calls.stat} stat, ${calls.readFile} readFile`;
    status.show();
  };
  show();
  const root = () => vscode.workspace.getConfiguration('gradlensTest').get('root') || '/nonexistent';
  const local = (uri) => path.join(root(), ...uri.path.split('/').filter(Boolean));
  const wrap = (fn) => {
    try {
      return fn();
    } catch (err) {
      throw err.code === 'ENOENT' ? vscode.FileSystemError.FileNotFound(err.message) : err;
    }
  };
  const readOnly = () => {
    throw vscode.FileSystemError.NoPermissions('gradlens-test: is read-only');
  };
  const provider = {
    onDidChangeFile: new vscode.EventEmitter().event,
    watch: () => new vscode.Disposable(() => {}),
    stat(uri) {
      calls.stat++;
      show();
      return wrap(() => {
        const s = fs.statSync(local(uri));
        return { type: s.isDirectory() ? vscode.FileType.Directory : vscode.FileType.File, ctime: s.ctimeMs, mtime: s.mtimeMs, size: s.size };
      });
    },
    readDirectory(uri) {
      calls.readDirectory++;
      return wrap(() => fs.readdirSync(local(uri), { withFileTypes: true }).map((d) => [d.name, d.isDirectory() ? vscode.FileType.Directory : vscode.FileType.File]));
    },
    readFile(uri) {
      calls.readFile++;
      show();
      return wrap(() => new Uint8Array(fs.readFileSync(local(uri))));
    },
    createDirectory: readOnly,
    writeFile: readOnly,
    delete: readOnly,
    rename: readOnly,
  };
  context.subscriptions.push(
    status,
    vscode.workspace.registerFileSystemProvider(SCHEME, provider, { isCaseSensitive: true, isReadonly: true }),
    vscode.commands.registerCommand('gradlensTest.attach', () => {
      const stream = vscode.workspace.getConfiguration('gradlensTest').get('stream');
      return vscode.commands.executeCommand('gradientLens.attachTraining', vscode.Uri.from({ scheme: SCHEME, path: stream }));
    }),
  );
}

module.exports = { activate, deactivate() {} };
