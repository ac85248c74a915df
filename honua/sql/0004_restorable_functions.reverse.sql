ALTER FUNCTION public.manifest_hash(jsonb) RESET search_path;
