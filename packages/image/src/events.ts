/** What a pull reports while it works; the CLI renders these with `PullProgress`. */
export type PullEvent =
  | { type: 'resolving'; ref: string }
  | {
      type: 'resolved';
      ref: string;
      digest: string;
      layers: { digest: string; size: number }[];
      /** compressed bytes of all layers */
      totalBytes: number;
    }
  | { type: 'layer-exists'; digest: string; size: number }
  | {
      type: 'layer-start';
      digest: string;
      size: number /** bytes already on disk from an earlier attempt */;
      offset: number;
    }
  | { type: 'layer-progress'; digest: string; size: number; bytes: number }
  | { type: 'layer-done'; digest: string; size: number }
  | { type: 'done'; ref: string; digest: string; size: number };

export type ProgressListener = (event: PullEvent) => void;
