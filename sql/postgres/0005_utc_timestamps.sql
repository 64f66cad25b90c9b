-- PostgreSQL stores TIMESTAMP values without text formatting issues; every writer
-- passes UTC. This migration keeps the numbering aligned with sqlite/.
SELECT 1;
