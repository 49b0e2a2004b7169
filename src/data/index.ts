/**
 * The data layer's public API: readers (tabular, NIfTI, DICOM, PNG), masks, preprocessing, radiomics, synthetic phantoms,
 * the catalogue entry that peers gossip. The SampleSet (samples.ts) is the hand-off to the engine.
 */
export * from './samples.ts';
export * from './tabular.ts';
export * from './volume.ts';
export * from './nifti.ts';
export * from './mesh.ts';
export * from './radiomics.ts';
export * from './dicom.ts';
export * from './masks.ts';
export * from './png.ts';
export * from './synth.ts';
export * from './folder.ts';
export * from './catalogue.ts';
export * from './register.ts';
export * from './preprocess.ts';
