/**
 * Tables of the posture feature (issue 16): the latest posture document per terminal and the
 * compliance it was last judged to have (for the alert on a transition). Only ./store.ts touches them.
 */
export const postureMigrations = [
  `CREATE TABLE posture_reports (
     agent_id TEXT PRIMARY KEY,
     received_at TEXT NOT NULL,
     collected_at TEXT NOT NULL,
     doc TEXT NOT NULL,
     compliant INTEGER NOT NULL CHECK (compliant IN (0, 1)),
     failing TEXT NOT NULL
   )`,
];
