/**
 * Following a training stream as a job appends to it: poll the file's size, read what was appended,
 * feed it to a TrainingStreamReader. Given a folder (runs/), follow the newest stream in it and switch
 * when a newer one appears. Pure apart from the FileAccess it is given (the extension passes one on
 * vscode.workspace.fs, tests one on node:fs), so a job on a remote machine is followed the same way.
 */
import type { TrainingRecord } from '../../engine/train/record';
import { TrainingStreamReader } from '../../engine/train/stream';

export interface FileInfo {
  /** Path or URI string, as the FileAccess understands it. */
  path: string;
  size: number;
  /** Modification time, ms since 1970 (the file system's clock). */
  mtime: number;
}

export interface FileAccess {
  /** null when the file does not exist (yet). */
  stat(path: string): Promise<FileInfo | null>;
  /** Bytes from `offset` to the end (at most `max`). */
  read(path: string, offset: number, max: number): Promise<Uint8Array>;
  /** Streams (`*.gradlens.jsonl`) below a folder. */
  streams(folder: string): Promise<FileInfo[]>;
  /** Display name of a path (relative to the workspace when inside it). */
  label(path: string): string;
}

export const STREAM_SUFFIX = '.gradlens.jsonl';

/** What one poll found. */
export interface FollowUpdate {
  file: string;
  record: TrainingRecord | null;
  /** Steps added by this poll (all of them after a reset). */
  newSteps: number;
  /** The reader started over (another file, or the file was replaced by a new run): consumers redraw from scratch. */
  reset: boolean;
  /** Module depths or source lines changed: map the record onto the source again. */
  relayout: boolean;
  ended: boolean;
  /** The anomaly arrived with this poll. */
  newAnomaly: boolean;
}

/** Largest read per poll: a long stream that is attached late is read over a few polls, not in one go. */
const MAX_READ = 32 << 20;

export class StreamFollower {
  private file: string | null = null;
  private reader: TrainingStreamReader | null = null;
  private offset = 0;
  private layoutVersion = 0;
  private lastListing = -Infinity;
  /** Host clock (ms) when the last step arrived (what "3 s ago" counts from: the job's clock may differ). */
  lastStepAt: number | null = null;

  /**
   * `target`: a stream file, or a folder whose newest stream is followed. `now` gives the host clock.
   */
  constructor(private readonly fs: FileAccess, readonly target: string, readonly isFolder: boolean, private readonly now: () => number = Date.now, private readonly listEveryMs = 3000) {
    if (!isFolder) this.file = target;
  }

  get currentFile(): string | null {
    return this.file;
  }

  get record(): TrainingRecord | null {
    return this.reader?.record ?? null;
  }

  get ended(): boolean {
    return this.reader?.ended ?? false;
  }

  /**
   * Reads what was appended since the last poll. Resolves null when nothing changed; throws the
   * reader's error (naming the line) when the stream is malformed.
   */
  async poll(): Promise<FollowUpdate | null> {
    let reset = false;
    if (this.isFolder && this.now() - this.lastListing >= this.listEveryMs) {
      this.lastListing = this.now();
      const newest = (await this.fs.streams(this.target)).sort((a, b) => b.mtime - a.mtime)[0];
      if (newest && newest.path !== this.file) {
        this.file = newest.path;
        this.restart();
        reset = true;
      }
    }
    if (!this.file) return null;
    const info = await this.fs.stat(this.file);
    if (!info) return null;
    if (info.size < this.offset) {
      // Shorter than what was read: a new run replaced the file.
      this.restart();
      reset = true;
    }
    if (info.size === this.offset && !reset) return null;
    this.reader ??= new TrainingStreamReader(this.fs.label(this.file));
    const hadAnomaly = !!this.reader.record?.anomaly;
    const before = reset ? 0 : this.reader.stepCount;
    const bytes = info.size > this.offset ? await this.fs.read(this.file, this.offset, MAX_READ) : new Uint8Array(0);
    this.offset += bytes.length;
    this.reader.push(bytes);
    const newSteps = this.reader.stepCount - before;
    if (newSteps > 0) this.lastStepAt = this.now();
    const relayout = this.reader.layoutVersion !== this.layoutVersion;
    this.layoutVersion = this.reader.layoutVersion;
    return {
      file: this.file,
      record: this.reader.record,
      newSteps,
      reset,
      relayout,
      ended: this.reader.ended,
      newAnomaly: !hadAnomaly && !!this.reader.record?.anomaly,
    };
  }

  private restart(): void {
    this.reader = null;
    this.offset = 0;
    this.layoutVersion = 0;
    this.lastStepAt = null;
  }
}
