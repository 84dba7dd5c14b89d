/**
 * FileAccess on vscode.workspace.fs: stat, folder listings and reads go through the workspace's file
 * system, so a stream on a remote machine (Remote-SSH, a container, WSL) is followed as a local one.
 */
import { open } from 'node:fs/promises';
import * as vscode from 'vscode';
import { FileAccess, FileInfo, STREAM_SUFFIX } from './follow';

const SKIP = new Set(['node_modules', '.git', '__pycache__', '.venv', 'venv']);

export function workspaceFileAccess(): FileAccess {
  const fs = vscode.workspace.fs;
  const stat = async (path: string): Promise<FileInfo | null> => {
    try {
      const s = await fs.stat(vscode.Uri.parse(path));
      return s.type & vscode.FileType.File ? { path, size: s.size, mtime: s.mtime } : null;
    } catch {
      return null;
    }
  };
  return {
    stat,
    async read(path, offset, max) {
      const uri = vscode.Uri.parse(path);
      if (uri.scheme === 'file') {
        // workspace.fs reads whole files only; on the extension host's own disk (where a workspace
        // extension runs, remote or not) read just the appended bytes.
        const handle = await open(uri.fsPath, 'r');
        try {
          const size = (await handle.stat()).size;
          const buffer = new Uint8Array(Math.max(0, Math.min(max, size - offset)));
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
          return buffer.subarray(0, bytesRead);
        } finally {
          await handle.close();
        }
      }
      return (await fs.readFile(uri)).slice(offset, offset + max);
    },
    async streams(folder) {
      const out: FileInfo[] = [];
      const walk = async (dir: vscode.Uri, depth: number) => {
        let entries: [string, vscode.FileType][];
        try {
          entries = await fs.readDirectory(dir);
        } catch {
          return;
        }
        for (const [name, type] of entries) {
          const child = vscode.Uri.joinPath(dir, name);
          if (type & vscode.FileType.Directory) {
            if (depth < 3 && !SKIP.has(name)) await walk(child, depth + 1);
          } else if (name.endsWith(STREAM_SUFFIX)) {
            const info = await stat(child.toString());
            if (info) out.push(info);
          }
        }
      };
      await walk(vscode.Uri.parse(folder), 0);
      return out;
    },
    label(path) {
      return vscode.workspace.asRelativePath(vscode.Uri.parse(path));
    },
  };
}
