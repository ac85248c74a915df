DROP TYPE IF EXISTS intake_text_range;
