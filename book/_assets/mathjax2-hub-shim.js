// ipywidgets' HTML manager typesets widget labels through MathJax 2's API (MathJax.Hub.Queue), but the
// book loads MathJax 3, so every label threw "reading 'Queue'". Map the one call it makes onto MathJax 3.
// Loaded deferred right after MathJax (unirep_lite/book.py), so window.MathJax is MathJax 3 by then.
(function () {
  var mj = window.MathJax;
  if (!mj || mj.Hub || !mj.startup) return;
  mj.Hub = {
    Queue: function () {
      for (var i = 0; i < arguments.length; i++) {
        var job = arguments[i];
        if (Array.isArray(job) && job[0] === "Typeset" && job[2]) {
          mj.startup.promise.then(function (el) { return function () { return mj.typesetPromise([el]); }; }(job[2]))
            .catch(function (err) { console.warn("MathJax typeset of a widget failed:", err); });
        }
      }
    },
  };
})();
