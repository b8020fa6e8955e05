/** This release: the workers' build id by default, and the version its golden histories are kept under. */
export const RELEASE = 'v0.3.0';
