import * as vscode from 'vscode';
import { Health, LineOverlay, overlayTextFor } from './model';

const COLORS: Record<Health, string> = {
  'non-finite': 'editorError.foreground',
  exploding: 'editorError.foreground',
  vanishing: 'editorWarning.foreground',
  dead: 'editorWarning.foreground',
  zero: 'editorInfo.foreground',
  healthy: 'testing.iconPassed',
  neutral: 'editorCodeLens.foreground',
};

/** After-line decorations and hovers for the overlays of each Python document. */
export class OverlayPresenter implements vscode.HoverProvider, vscode.Disposable {
  private readonly types = new Map<Health, vscode.TextEditorDecorationType>();
  private readonly overlays = new Map<string, LineOverlay[]>();
  private readonly disposables: vscode.Disposable[] = [];

  constructor() {
    for (const health of Object.keys(COLORS) as Health[]) {
      this.types.set(health, vscode.window.createTextEditorDecorationType({
        after: { color: new vscode.ThemeColor(COLORS[health]), margin: '0 0 0 1.5em', fontStyle: 'normal' },
        rangeBehavior: vscode.DecorationRangeBehavior.ClosedClosed,
      }));
    }
    this.disposables.push(
      vscode.languages.registerHoverProvider({ language: 'python' }, this),
      vscode.window.onDidChangeVisibleTextEditors(() => this.refresh()),
    );
  }

  set(uri: vscode.Uri, overlays: LineOverlay[]): void {
    this.overlays.set(uri.toString(), overlays);
    this.refresh();
  }

  clear(uri?: vscode.Uri): void {
    if (uri) this.overlays.delete(uri.toString());
    else this.overlays.clear();
    this.refresh();
  }

  overlaysFor(uri: vscode.Uri): LineOverlay[] {
    return this.overlays.get(uri.toString()) ?? [];
  }

  private refresh(): void {
    for (const editor of vscode.window.visibleTextEditors) {
      const list = this.overlays.get(editor.document.uri.toString()) ?? [];
      for (const [health, type] of this.types) {
        const ranges = list
          .filter((o) => o.health === health && o.line < editor.document.lineCount)
          .map((o) => {
            const line = editor.document.lineAt(o.line);
            const text = overlayTextFor(o, line.text.trimEnd().length);
            return { range: new vscode.Range(line.range.end, line.range.end), renderOptions: { after: { contentText: text } } };
          });
        editor.setDecorations(type, ranges);
      }
    }
  }

  provideHover(document: vscode.TextDocument, position: vscode.Position): vscode.Hover | undefined {
    const overlay = this.overlaysFor(document.uri).find((o) => o.line === position.line);
    if (!overlay) return undefined;
    const md = new vscode.MarkdownString(overlay.hover, true);
    md.isTrusted = false;
    return new vscode.Hover(md, document.lineAt(position.line).range);
  }

  dispose(): void {
    for (const t of this.types.values()) t.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
