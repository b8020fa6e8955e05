import { stopProgramRunner } from '../../platform/program-runner';

// Jest gives every test file its own copy of the modules, so each file that ran programs started its own
// helper process: it ends with the file, instead of idling until the jest worker exits.
afterAll(() => stopProgramRunner());
