// Minimal typings for the parts of dcmjs the data layer uses (the package ships none).
declare module 'dcmjs' {
  export type DicomValue = unknown;
  export type NaturalDataset = Record<string, unknown> & { _vrMap?: Record<string, string> };
  export interface DicomDictInstance {
    meta: Record<string, unknown>;
    dict: Record<string, unknown>;
    write(options?: Record<string, unknown>): ArrayBuffer;
  }
  /** loglevel loggers (the parser's 'validation.dcmjs' among them). */
  export interface DcmjsLogger {
    methodFactory: (method: string, level: number, name: string | symbol | undefined) => (...args: unknown[]) => void;
    getLevel(): number;
    setLevel(level: number | string, persist?: boolean): void;
    getLogger(name: string): DcmjsLogger;
  }
  const dcmjs: {
    log: DcmjsLogger;
    data: {
      DicomMessage: { readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): DicomDictInstance };
      DicomMetaDictionary: {
        naturalizeDataset(dict: Record<string, unknown>): NaturalDataset;
        denaturalizeDataset(ds: NaturalDataset): Record<string, unknown>;
        uid(): string;
      };
      DicomDict: new (meta: Record<string, unknown>) => DicomDictInstance;
    };
  };
  export default dcmjs;
}
