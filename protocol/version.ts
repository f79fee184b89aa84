/** Version reported by agents and the console (kept in step with package.json). */
export const SEKIMORI_VERSION = '0.1.0';
