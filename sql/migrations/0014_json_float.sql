-- Rendering analytics' floats in the database exactly as the Python path serializes them
-- (issue 14, the analytics root fields compiled to SQL). Like 0013: one expression,
-- LANGUAGE sql, not STRICT, so the planner inlines it; NULL in, NULL out.

-- A float8 as the JSON text orjson writes for the same double. Both print the shortest
-- digits that read back as the same double (PostgreSQL's float8 text with the default
-- extra_float_digits = 1); they differ only in layout: orjson writes fixed notation for
-- decimal exponents -5 .. 15 (PostgreSQL: -4 .. 14) with ".0" on integral values, and an
-- exponent without leading zeros ("1e-6", "1e+16"; PostgreSQL "1e-06", "1e+16").
-- Checked against orjson on 100,000 doubles below 2^53 in magnitude. Beyond that (integral
-- doubles from about 2^54) PostgreSQL sometimes prints 17 digits where 16 suffice: no float
-- the API renders this way comes near (fractions, bin bounds, averages and sums of money).
-- Infinity and NaN have no JSON form (GraphQL refuses them): they render as null.
CREATE FUNCTION cdm_json_float(x float8) RETURNS json
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT (CASE
    WHEN x IN ('NaN', 'Infinity', '-Infinity') THEN NULL
    WHEN strpos(x::text, 'e') = 0
      THEN CASE WHEN strpos(x::text, '.') = 0 THEN x::text || '.0' ELSE x::text END
    WHEN x::text LIKE '%e-05'
      THEN regexp_replace(x::text, '^(-?)(\d)\.?(\d*)e-05$', '\10.0000\2\3')
    WHEN x::text LIKE '%e+15'
      THEN CASE WHEN x < 0 THEN '-' ELSE '' END
           || rpad(regexp_replace(x::text, '^-?(\d)\.?(\d*)e\+15$', '\1\2'), 16, '0')
           || CASE WHEN length(regexp_replace(x::text, '^-?(\d)\.?(\d*)e\+15$', '\1\2')) > 16
                   THEN '.' || substr(regexp_replace(x::text, '^-?(\d)\.?(\d*)e\+15$', '\1\2'), 17)
                   ELSE '.0' END
    ELSE regexp_replace(x::text, 'e([+-])0*(\d)', 'e\1\2')
  END)::json
$$;
