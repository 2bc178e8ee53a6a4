// GraphiQL for CDM, from files this server serves (no CDN: it works offline).
// The API key stays in this tab (sessionStorage, shared with the dashboard); `#key=...` in
// the address fills it in and is then removed from the address bar. It becomes the
// Authorization header of every request, editable in the Headers tab.
"use strict";

const EXAMPLE = `# The newest customers and their latest purchases.
# Run with Ctrl-Enter; the Docs panel lists every field.
{
  customers(first: 5) {
    totalCount
    nodes {
      id
      firstName
      country
      purchaseSummary { purchaseCount totalSpend lastPurchaseAt }
      purchases(first: 3) { nodes { amount currency purchasedAt product { name } } }
    }
  }
}
`;

document.addEventListener("DOMContentLoaded", () => {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromHash) {
    sessionStorage.setItem("cdm-key", fromHash);
    history.replaceState(null, "", location.pathname + location.search);
  }
  const key = sessionStorage.getItem("cdm-key");
  const headers = JSON.stringify(
    key ? { Authorization: `Bearer ${key}` } : { Authorization: "Bearer <your API key>" },
    null,
    2,
  );
  const fetcher = GraphiQL.createFetcher({ url: location.pathname });
  ReactDOM.render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery: EXAMPLE,
      headers,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      defaultEditorToolsVisibility: key ? false : "headers",
    }),
    document.getElementById("graphiql"),
  );
});
