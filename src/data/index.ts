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
