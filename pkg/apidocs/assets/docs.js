// Renders the API description this server publishes. Kept in a file of its own: the page's
// Content-Security-Policy allows no inline script.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // Credentials are typed by the reader (Authorize); nothing is stored between visits.
    persistAuthorization: false,
    // No call home: the validator badge would send the spec's URL to swagger.io.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
