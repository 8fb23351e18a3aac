// GraphiQL on this server's /graphql, with the Authorization header to fill in ready in the
// headers editor (a pasted token is kept in this browser's local storage only if the user
// turns header persistence on in GraphiQL's settings).
"use strict";

const EXAMPLE = `# 地热回灌信用登记 GraphQL。
# 1. 在下方 Headers 中把 PASTE-YOUR-API-TOKEN-HERE 换成 API 令牌
# 2. 按 Shift-Ctrl-R 载入结构，Ctrl-Enter 执行。
# Send your token as {"Authorization": "Bearer <token>"} (Headers tab), reload the schema
# (Shift-Ctrl-R), run with Ctrl-Enter. Operations to copy: graphql/operations/ in the repository.
query Eligibility($creditCode: String!) {
  eligibility(creditCode: $creditCode, kind: WATER_PERMIT) {
    decision
    grade
    restrictedUntil
    reasons { code message ruleId policyClause }
  }
}
`;

const fetcher = GraphiQL.createFetcher({ url: window.location.pathname });

ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultQuery: EXAMPLE,
    defaultVariables: '{"creditCode": "91350100M000100Y43"}',
    // Header values must be ASCII (fetch refuses others): the placeholder is the token's place.
    defaultHeaders: '{"Authorization": "Bearer PASTE-YOUR-API-TOKEN-HERE"}',
    defaultEditorToolsVisibility: "headers",
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: false,
  }),
);
